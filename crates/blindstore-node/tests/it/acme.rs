//! Automatic certificates against a real ACME server: Debian's `pebble` (Let's Encrypt's test
//! server), with `pebble-challtestsrv` as its DNS so that a test name resolves to 127.0.0.1
//! and pebble really fetches the HTTP-01 answer from the node. Pebble issues 12-second
//! certificates here, so the node must renew one while the test watches, and serve it: a
//! request made after the first certificate expired succeeds only over a renewed one.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::{free_port, NodeProcess};

const DOMAIN: &str = "node1.blindstore.test";
/// The certificates' lifetime, seconds: renewed 8 s in.
const VALIDITY: u64 = 12;

/// A client that trusts only `root` (pebble's) and finds the test name at 127.0.0.1:`https`.
fn trusting(root: &str, https: u16) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(root.as_bytes()).unwrap())
        .tls_built_in_root_certs(false)
        .resolve(DOMAIN, ([127, 0, 0, 1], https).into())
        .build()
        .unwrap()
}

/// A child process killed (by pid) when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(program: &str, args: &[&str], envs: &[(&str, &str)], log: &Path) -> Killed {
    let log = std::fs::File::create(log).unwrap();
    let child = Command::new(program)
        .args(args)
        .envs(envs.iter().copied())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("starting {program}: {e} (install Debian's pebble: apt-get install pebble)")
        });
    Killed(child)
}

async fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_is_issued_served_over_http2_and_renewed_before_it_expires() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);

    // Pebble's own HTTPS listener: a certificate from a CA made here, which the node trusts
    // for the ACME server (--acme-ca-cert).
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    std::fs::write(path("ca.pem"), ca.pem()).unwrap();
    std::fs::write(path("pebble.pem"), leaf.pem()).unwrap();
    std::fs::write(path("pebble.key"), leaf_key.serialize_pem()).unwrap();

    let (dns, challtest_mgmt, acme, acme_mgmt, http01) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let _dns = spawn(
        "pebble-challtestsrv",
        &[
            "-defaultIPv4",
            "127.0.0.1",
            "-defaultIPv6",
            "",
            "-dns01",
            &format!("127.0.0.1:{dns}"),
            "-http01",
            "",
            "-https01",
            "",
            "-tlsalpn01",
            "",
            "-management",
            &format!("127.0.0.1:{challtest_mgmt}"),
        ],
        &[],
        &path("challtestsrv.log"),
    );
    let config = serde_json::json!({"pebble": {
        "listenAddress": format!("127.0.0.1:{acme}"),
        "managementListenAddress": format!("127.0.0.1:{acme_mgmt}"),
        "certificate": path("pebble.pem"),
        "privateKey": path("pebble.key"),
        "httpPort": http01,
        "tlsPort": free_port(),
        "ocspResponderURL": "",
        "externalAccountBindingRequired": false,
        "certificateValidityPeriod": VALIDITY,
    }});
    std::fs::write(path("pebble.json"), config.to_string()).unwrap();
    let _pebble = spawn(
        "pebble",
        &[
            "-config",
            path("pebble.json").to_str().unwrap(),
            "-dnsserver",
            &format!("127.0.0.1:{dns}"),
        ],
        &[("PEBBLE_VA_NOSLEEP", "1"), ("PEBBLE_WFE_NONCEREJECT", "0")],
        &path("pebble.log"),
    );
    wait_listening(acme).await;
    wait_listening(acme_mgmt).await;

    // A node whose challenge answers the ACME server cannot reach does not start, and says
    // what the server said.
    let unreachable = Command::new(env!("CARGO_BIN_EXE_blindstore"))
        .args(["serve", "--http-addr", "127.0.0.1:0", "--data-dir"])
        .arg(path("unvalidated"))
        .args(["--acme-domain", DOMAIN, "--acme-ca-cert"])
        .arg(path("ca.pem"))
        .args([
            "--acme-directory",
            &format!("https://127.0.0.1:{acme}/dir"),
            "--acme-http-addr",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .output()
        .unwrap();
    assert!(!unreachable.status.success());
    let stderr = String::from_utf8_lossy(&unreachable.stderr);
    assert!(
        stderr.contains("getting the first certificate over ACME")
            && stderr.contains(&format!("did not validate {DOMAIN}"))
            && stderr.contains("connection refused"),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&unreachable.stdout).contains("listening on https"));

    let data = path("data");
    let log = path("node.log");
    let directory = format!("https://127.0.0.1:{acme}/dir");
    let ca_path = path("ca.pem");
    let http01_addr = format!("127.0.0.1:{http01}");
    let node_args = [
        "--acme-domain",
        DOMAIN,
        "--acme-email",
        "ops@blindstore.test",
        "--acme-directory",
        &directory,
        "--acme-ca-cert",
        ca_path.to_str().unwrap(),
        "--acme-http-addr",
        &http01_addr,
    ];
    let node = NodeProcess::start_default_logs(&data, &node_args, &log);
    let https: u16 = node
        .url
        .strip_prefix("https://127.0.0.1:")
        .unwrap_or_else(|| panic!("served over HTTPS: {}", node.url))
        .parse()
        .unwrap();
    let issued_at = Instant::now();

    // Kept in the data dir, private.
    for file in ["account.json", "certificate.json"] {
        let mode = std::fs::metadata(data.join("acme").join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    let kept = || std::fs::read_to_string(data.join("acme/certificate.json")).unwrap();
    let first = kept();

    // Served, over HTTP/2, to a client that trusts only pebble's root and asks by name.
    let pebble_admin = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .tls_built_in_root_certs(false)
        .build()
        .unwrap();
    let root = pebble_admin
        .get(format!("https://127.0.0.1:{acme_mgmt}/roots/0"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let client = || trusting(&root, https);
    let url = format!("https://{DOMAIN}:{https}/v1/health");
    let answer = client().get(&url).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.version(), reqwest::Version::HTTP_2);

    // Port 80 answers challenges only; everything else goes to HTTPS.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{http01}/v1/health?x=1"))
        .header("host", DOMAIN)
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 308);
    assert_eq!(
        plain.headers()["location"],
        format!("https://{DOMAIN}/v1/health?x=1")
    );
    // Only to its own names: no redirect to a host a client made up.
    let elsewhere = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{http01}/"))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 404);

    // Renewed before it expires: a new certificate in the data dir, and after the first one
    // has expired a new connection still verifies (a client refuses an expired certificate).
    let deadline = Instant::now() + Duration::from_secs(4 * VALIDITY);
    while kept() == first {
        assert!(
            Instant::now() < deadline,
            "no renewal; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let past_first_expiry = Duration::from_secs(VALIDITY + 1).saturating_sub(issued_at.elapsed());
    tokio::time::sleep(past_first_expiry).await;
    let answer = client().get(&url).send().await;
    assert!(
        answer.as_ref().is_ok_and(|a| a.status() == 200),
        "{answer:?}; log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("ACME: renewing the certificate"), "{log}");
    // The metrics an alert watches: when the served certificate expires, and renewals.
    let admin = std::fs::read_to_string(data.join("admin-token")).unwrap();
    let metrics = client()
        .get(format!("https://{DOMAIN}:{https}/v1/metrics"))
        .bearer_auth(admin.trim())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let expiry: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("blindstore_tls_certificate_expiry_seconds "))
        .unwrap_or_else(|| panic!("{metrics}"))
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        expiry > now && expiry < now + 2.0 * VALIDITY as f64,
        "{expiry} {now}"
    );
    assert!(
        metrics.contains("blindstore_acme_renewals_total{result=\"ok\"}"),
        "{metrics}"
    );

    // Restarted right after a renewal, it serves the certificate it kept: no new order.
    let renewed = kept();
    let deadline = Instant::now() + Duration::from_secs(4 * VALIDITY);
    while kept() == renewed {
        assert!(Instant::now() < deadline, "no second renewal");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let serving = kept();
    node.terminate();
    let log2 = path("node2.log");
    let node = NodeProcess::start_default_logs(&data, &node_args, &log2);
    let restarted = std::fs::read_to_string(&log2).unwrap();
    assert!(
        restarted.contains("ACME: serving the certificate kept in"),
        "{restarted}"
    );
    assert_eq!(kept(), serving);
    let https: u16 = node.url.rsplit(':').next().unwrap().parse().unwrap();
    let url = format!("https://{DOMAIN}:{https}/v1/health");
    let answer = trusting(&root, https).get(&url).send().await.unwrap();
    assert_eq!(answer.status(), 200);
}

/// Settings that cannot work are refused before anything starts, with the reason.
#[test]
fn bad_acme_settings_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_blindstore"))
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .args(["--acme-domain", "127.0.0.1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not a DNS name"), "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_blindstore"))
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .args([
            "--acme-domain",
            "a.example.com",
            "--tls-cert",
            "c",
            "--tls-key",
            "k",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("leave out tls_cert"), "{stderr}");
}
