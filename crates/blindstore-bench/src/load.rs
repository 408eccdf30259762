//! The closed loop: each client sends one request, waits for its answer, then sends the next,
//! so the offered load is the number of clients. A row's throughput is the requests answered
//! successfully that were sent inside the measure window, divided by the time from the
//! window's start to the last of their answers; latency is each request's, send to answer.

use std::future::Future;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// How long a row runs and how much it may send.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Requests sent in this first part are neither counted nor timed (errors still count).
    pub warmup: Duration,
    pub measure: Duration,
    /// Requests per client at most, warm-up included, so every loop is bounded in count too.
    pub max_ops: u64,
}

/// One closed-loop client.
pub trait Worker: Send + 'static {
    /// One request, until its answer. An error is counted and the loop goes on.
    fn op(&mut self) -> impl Future<Output = Result<(), String>> + Send;
}

/// What a row measured, all clients together.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Successful requests sent inside the measure window.
    pub ops: u64,
    /// Failed requests, warm-up included.
    pub errors: u64,
    pub ops_per_sec: f64,
    pub p50: Duration,
    pub p99: Duration,
    /// The first error's message, to say what went wrong.
    pub first_error: Option<String>,
}

impl Outcome {
    /// Did work and met no error: what the quick mode asserts.
    pub fn is_clean(&self) -> bool {
        self.ops > 0 && self.errors == 0
    }
}

/// Runs `workers` as closed-loop clients for `window`; every client starts at the same time.
pub async fn run<W: Worker>(workers: Vec<W>, window: Window) -> anyhow::Result<Outcome> {
    let measure_from = Instant::now() + window.warmup;
    let end = measure_from + window.measure;
    // Dropping the set (an interrupted run) aborts the clients.
    let mut clients = tokio::task::JoinSet::new();
    for worker in workers {
        clients.spawn(client_loop(worker, measure_from, end, window.max_ops));
    }
    let mut total = Tally::new();
    while let Some(tally) = clients.join_next().await {
        total.merge(tally?);
    }
    let elapsed = total.last_answer.map_or(Duration::ZERO, |t| {
        t.saturating_duration_since(measure_from)
    });
    let ops = total.latencies.len();
    Ok(Outcome {
        ops,
        errors: total.errors,
        ops_per_sec: if elapsed.is_zero() {
            0.0
        } else {
            ops as f64 / elapsed.as_secs_f64()
        },
        p50: Duration::from_micros(total.latencies.value_at_quantile(0.50)),
        p99: Duration::from_micros(total.latencies.value_at_quantile(0.99)),
        first_error: total.first_error,
    })
}

/// A client that fails at once must not spin: it waits this long after each error.
const ERROR_PAUSE: Duration = Duration::from_millis(10);

async fn client_loop<W: Worker>(
    mut worker: W,
    measure_from: Instant,
    end: Instant,
    max_ops: u64,
) -> Tally {
    let mut tally = Tally::new();
    for _ in 0..max_ops {
        let sent = Instant::now();
        if sent >= end {
            break;
        }
        let result = worker.op().await;
        let answered = Instant::now();
        match result {
            Ok(()) if sent >= measure_from => tally.record(answered - sent, answered),
            Ok(()) => {}
            Err(message) => {
                tally.error(message);
                tokio::time::sleep(ERROR_PAUSE).await;
            }
        }
    }
    tally
}

/// One client's counts, merged into the row's.
struct Tally {
    /// Microseconds; its count is the number of measured successes.
    latencies: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
    last_answer: Option<Instant>,
}

impl Tally {
    fn new() -> Self {
        Self {
            // 1 µs to 10 min at 3 significant digits: any answer a request can get.
            latencies: Histogram::new_with_bounds(1, 600_000_000, 3)
                .expect("constant bounds are valid"),
            errors: 0,
            first_error: None,
            last_answer: None,
        }
    }

    fn record(&mut self, latency: Duration, answered: Instant) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latencies.saturating_record(micros.max(1));
        self.last_answer = self.last_answer.max(Some(answered));
    }

    fn error(&mut self, message: String) {
        self.errors += 1;
        self.first_error.get_or_insert(message);
    }

    fn merge(&mut self, other: Tally) {
        self.latencies
            .add(&other.latencies)
            .expect("histograms with the same bounds add up");
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.last_answer = self.last_answer.max(other.last_answer);
    }
}
