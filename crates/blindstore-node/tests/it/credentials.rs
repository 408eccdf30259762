//! One admin credential for the whole cluster, as an operator meets it: `blindstore cluster
//! admin-token rotate` on one node, then every node and the gateway accept the new token (and
//! a metrics token for `/v1/metrics` only), and no longer the tokens they were started with.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::cluster::{Cluster, ADMIN};
use crate::process::{eventually, NodeProcess};

/// The status of `GET path` at `url` with `token`.
async fn status(url: &str, path: &str, token: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{url}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// Runs `blindstore cluster admin-token rotate` with `extra`; stdout.
fn rotate(url: &str, token: &str, extra: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_blindstore"))
        .args(["cluster", "admin-token", "rotate", "--url", url])
        .args(["--admin-token", token])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn token_in(text: &str, name: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in {text:?}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_admin_token_rotated_on_one_node_opens_every_node_and_the_gateway() {
    let cluster = Cluster::start(&[]);
    let gateway = cluster.start_gateway(&[]);
    let urls: Vec<String> = cluster
        .nodes
        .iter()
        .flatten()
        .map(|n| n.url.clone())
        .collect();
    let via = &urls[1];
    eventually(Duration::from_secs(30), "cluster version 3", || {
        let client = cluster.nodes[0].as_ref().unwrap().client();
        async move { client.health().await.is_ok_and(|h| h.cluster_version >= 3) }
    })
    .await;

    // The token goes to a new file only: one that exists is refused before anything changes.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("admin-token");
    std::fs::write(&file, "taken").unwrap();
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_blindstore"))
        .args([
            "cluster",
            "admin-token",
            "rotate",
            "--url",
            via,
            "--admin-token",
            ADMIN,
        ])
        .args(["--out", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert_eq!(
        status(via, "/v1/admin/cluster", ADMIN).await,
        200,
        "unchanged"
    );
    std::fs::remove_file(&file).unwrap();

    let said = rotate(via, ADMIN, &["--out", file.to_str().unwrap()]);
    assert!(said.contains("written to"), "{said}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let admin = token_in(&std::fs::read_to_string(&file).unwrap(), "admin_token");
    let metrics = token_in(&rotate(via, &admin, &["--metrics"]), "metrics_token");

    // Every node: the new admin token opens admin calls, the start-up one no longer does; the
    // metrics token reads metrics and nothing else.
    for url in &urls {
        eventually(Duration::from_secs(10), "the rotation applied", || async {
            status(url, "/v1/admin/cluster", ADMIN).await == 401
                && status(url, "/v1/admin/cluster", &admin).await == 200
                && status(url, "/v1/metrics", &metrics).await == 200
        })
        .await;
        assert_eq!(status(url, "/v1/admin/zones", &metrics).await, 401);
    }
    // The gateway learns them from the members; admin calls it forwards are members' to judge.
    let gw = &gateway.url;
    eventually(Duration::from_secs(20), "the gateway follows", || async {
        status(gw, "/v1/admin/cache", ADMIN).await == 401
            && status(gw, "/v1/admin/cache", &admin).await == 200
    })
    .await;
    assert_eq!(status(gw, "/v1/metrics", &metrics).await, 200);
    assert_eq!(status(gw, "/v1/admin/cache", &metrics).await, 401);
    assert_eq!(status(gw, "/v1/admin/cluster", &admin).await, 200);
    assert_eq!(status(gw, "/v1/admin/cluster", ADMIN).await, 401);

    // The operator's commands work with it on any node, whichever leads (and --url takes
    // host:port as well as a URL).
    let host_port = urls[2].strip_prefix("http://").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_blindstore"))
        .args(["cluster", "status", "--url", host_port])
        .args(["--admin-token", &admin])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop::<NodeProcess>(gateway);
}
