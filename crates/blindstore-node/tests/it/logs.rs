//! The leader's log as an on-call engineer reads it, with the default levels: a member that
//! dies is named once ("unreachable"), and once more when it is back — not on every retry.

use std::time::Duration;

use blindstore_client::ChainWriter;
use blindstore_types::ZoneId;

use crate::cluster::ADMIN;
use crate::process::{eventually, free_port, NodeProcess};

fn warnings(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_member_is_named_once_when_it_goes_and_once_when_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("n1.log");
    let leader = NodeProcess::start_default_logs(
        &dir.path().join("n1"),
        &[
            "--rpc-addr",
            "127.0.0.1:0",
            "--admin-token",
            ADMIN,
            "--demo-zone",
            "true",
        ],
        &log_path,
    );
    let seed = leader.rpc.clone().unwrap();
    let token = std::fs::read_to_string(dir.path().join("n1/join-token")).unwrap();
    let rpc3 = format!("127.0.0.1:{}", free_port());
    let join = |n: &str, rpc: &str| {
        NodeProcess::start(
            &dir.path().join(n),
            &[
                "--rpc-addr",
                rpc,
                "--admin-token",
                ADMIN,
                "--join",
                &seed,
                "--join-token",
                token.trim(),
            ],
        )
    };
    let _n2 = join("n2", "127.0.0.1:0");
    let n3 = join("n3", &rpc3);
    let client = leader.client();
    eventually(Duration::from_secs(30), "three members", || {
        let admin = client.clone().with_admin_token(ADMIN);
        async move { admin.cluster().await.is_ok_and(|m| m.members.len() == 3) }
    })
    .await;

    // Node 3 dies while the cluster takes writes.
    n3.kill_9();
    let zone = ZoneId::new("demo").unwrap();
    let w = ChainWriter::generate(zone.clone());
    client.create_chain(&zone, w.public_key()).await.unwrap();
    let mut head = w.genesis();
    for i in 0..40u64 {
        let (request, hash) = w.sign(i, head, format!("entry {i}").as_bytes(), vec![]);
        client.append(&zone, &w.chain_id(), &request).await.unwrap();
        head = hash;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let unreachable = format!("node 3 at {rpc3} is unreachable");
    eventually(
        Duration::from_secs(10),
        "the leader names the dead member",
        || {
            let log = std::fs::read_to_string(&log_path).unwrap();
            std::future::ready(log.contains(&unreachable))
        },
    )
    .await;
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert_eq!(log.matches(&unreachable).count(), 1, "{log}");
    let noise = warnings(&log);
    assert!(
        noise.len() <= 3,
        "warnings and errors while a member is down:\n{}",
        noise.join("\n")
    );

    // Back on the same address: one line says so.
    let _n3 = NodeProcess::start(
        &dir.path().join("n3"),
        &["--rpc-addr", &rpc3, "--admin-token", ADMIN],
    );
    let back = format!("node 3 at {rpc3} is reachable again");
    eventually(
        Duration::from_secs(20),
        "the leader says it is back",
        || {
            let log = std::fs::read_to_string(&log_path).unwrap();
            std::future::ready(log.contains(&back))
        },
    )
    .await;
}

#[test]
fn a_new_cluster_prints_where_its_secrets_are_and_opens_no_demo_zone() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("n1");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_blindstore"))
        .args([
            "serve",
            "--http-addr",
            "127.0.0.1:0",
            "--rpc-addr",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(&data)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut printed = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let done = line.starts_with("blindstore listening on ");
        printed.push(line);
        if done {
            break;
        }
    }
    // A cluster's first node makes no open `demo` zone unless asked.
    let url = printed.last().unwrap()["blindstore listening on ".len()..].to_owned();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let admin = std::fs::read_to_string(data.join("admin-token")).unwrap();
    let body = runtime.block_on(async {
        reqwest::Client::new()
            .get(format!("{url}/v1/admin/zones/demo"))
            .bearer_auth(admin.trim())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    assert!(body.contains("unknown_zone"), "{body}");
    child.kill().unwrap();
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    child.wait().unwrap();
    let printed = printed.join("\n") + &stderr;
    for file in ["join-token", "gateway-token", "admin-token"] {
        let secret = std::fs::read_to_string(data.join(file)).unwrap();
        assert!(
            !printed.contains(secret.trim()),
            "{file} printed:\n{printed}"
        );
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(data.join(file)).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    assert!(printed.contains("join token written to"), "{printed}");
}
