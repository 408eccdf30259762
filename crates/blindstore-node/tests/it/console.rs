//! What the admin console stands on, over HTTP: the page itself on nodes and gateways (with
//! its strict policy), the cluster overview (each member's own health, and why a member is
//! missing), and the most requested chunks. The console's walkthrough in Chromium is
//! `crates/blindstore-web/console/test/`.

use std::time::Duration;

use reqwest::header::CONTENT_SECURITY_POLICY;

use crate::cluster::{demo, put_chunks, Cluster, ADMIN};
use crate::process::eventually;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_and_gateways_serve_the_console_and_what_it_shows() {
    // The gateway is a trusted proxy, as docs/operations.md says to make it: members then
    // believe the host name it forwards.
    let mut cluster = Cluster::start(&["--trusted-proxies", "127.0.0.1/32"]);
    let gateway = cluster.start_gateway(&["--name", "edge-1"]);
    let clients = cluster.clients();
    let chunks = put_chunks(&clients, "asked for", 3).await;

    // The page, on a node and on the gateway: a strict policy, nothing inline or foreign.
    let http = reqwest::Client::new();
    for base in [&cluster.nodes[0].as_ref().unwrap().url, &gateway.url] {
        let page = http.get(format!("{base}/admin/")).send().await.unwrap();
        assert_eq!(page.status(), 200, "{base}");
        let csp = page.headers()[CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(
            csp.starts_with("default-src 'none'; script-src 'self'")
                && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
        assert!(page.text().await.unwrap().contains("<title>"));
        let missing = http
            .get(format!("{base}/admin/no-such-file.js"))
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), 404);
        // Nothing outside the console's files, however the path is spelled (each of these
        // files exists beside the console's build).
        for escape in [
            "..%2F..%2FCargo.toml",
            "..%2Fpackage.json",
            "..%2Fsrc%2Fconsole.ts",
        ] {
            let outside = http
                .get(format!("{base}/admin/{escape}"))
                .send()
                .await
                .unwrap();
            assert_eq!(outside.status(), 404, "{escape}");
        }
        let bare = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(format!("{base}/admin"))
            .send()
            .await
            .unwrap();
        assert_eq!(bare.headers()["location"], "/admin/");
    }

    // On a zone's site host name, `/admin/` is the site's own, never the console: an app's
    // pages never share an origin with an operator's token.
    node1_admin_settings(&clients[0], "app.example.test").await;
    // (once node 1 has applied the setting).
    for base in [&cluster.nodes[0].as_ref().unwrap().url, &gateway.url] {
        eventually(
            Duration::from_secs(5),
            "the site host answering /admin/",
            || async {
                let on_site = http
                    .get(format!("{base}/admin/"))
                    .header("host", "app.example.test")
                    .send()
                    .await
                    .unwrap();
                let console = on_site
                    .headers()
                    .get(CONTENT_SECURITY_POLICY)
                    .is_some_and(|csp| {
                        csp.to_str()
                            .unwrap()
                            .starts_with("default-src 'none'; script-src 'self'")
                    });
                // No site is deployed there: the site's 404, not the console.
                !console && on_site.status() == 404
            },
        )
        .await;
    }

    // The most requested chunks of a node: the one read three times first, with its count.
    let node1 = clients[0].clone().with_admin_token(ADMIN);
    for _ in 0..3 {
        node1.get_chunk(&demo(), &chunks[1].0).await.unwrap();
    }
    node1.get_chunk(&demo(), &chunks[2].0).await.unwrap();
    let most = node1.most_requested().await.unwrap().most_requested;
    assert_eq!((most[0].hash, most[0].requests), (chunks[1].0, 3));
    assert_eq!((most[1].hash, most[1].requests), (chunks[2].0, 1));
    assert!(clients[0].most_requested().await.is_err(), "admin only");
    // The gateway counts what it is asked.
    let via_gateway = blindstore_client::Client::new(&gateway.url).with_admin_token(ADMIN);
    via_gateway.get_chunk(&demo(), &chunks[0].0).await.unwrap();
    let most = via_gateway.most_requested().await.unwrap().most_requested;
    assert_eq!(via_gateway.health().await.unwrap().name, "edge-1");
    assert_eq!((most[0].hash, most[0].requests), (chunks[0].0, 1));

    // The overview: every member with its own health, also through the gateway.
    for client in [&node1, &via_gateway] {
        let overview = client.cluster_overview().await.unwrap();
        assert_eq!(overview.members.len(), 3);
        assert!(overview.members.iter().all(|m| m
            .health
            .as_ref()
            .is_some_and(|h| h.node_id == m.member.node_id && h.feature_level > 0)));
    }
    // A removal asked of a follower names the leader, so the caller (the console shows the
    // message) knows where to go; nothing changes.
    let overview = node1.cluster_overview().await.unwrap();
    let follower = overview
        .members
        .iter()
        .find(|m| Some(m.member.node_id) != overview.leader)
        .unwrap();
    let follower = blindstore_client::Client::new(&format!("http://{}", follower.member.http_addr))
        .with_admin_token(ADMIN);
    let refused = follower.remove_node(99, true, true).await.unwrap_err();
    assert_eq!(refused.status().map(|s| s.as_u16()), Some(503));
    assert!(
        refused
            .to_string()
            .contains(&format!("the leader is node {}", overview.leader.unwrap())),
        "{refused}"
    );

    // `cluster status` through the gateway: every member's health, as the console sees it
    // (the CLI asks the overview, so it needs no way to the members themselves).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_blindstore"))
        .args([
            "cluster",
            "status",
            "--json",
            "--admin-token",
            ADMIN,
            "--url",
        ])
        .arg(&gateway.url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let nodes = status["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{status}");
    assert!(nodes.iter().all(|n| n["reachable"] == true), "{status}");

    // A dead member is listed with why its health is missing; the others still answer.
    let dead = cluster.nodes[2].take().unwrap();
    let dead_addr = dead.url.trim_start_matches("http://").to_owned();
    dead.kill_9();
    eventually(
        Duration::from_secs(10),
        "the dead member's health missing",
        || async {
            node1.cluster_overview().await.is_ok_and(|o| {
                o.members
                    .iter()
                    .any(|m| m.member.http_addr == dead_addr && m.health.is_none())
            })
        },
    )
    .await;
    let overview = node1.cluster_overview().await.unwrap();
    let gone = overview
        .members
        .iter()
        .find(|m| m.member.http_addr == dead_addr)
        .unwrap();
    assert!(
        gone.error.as_deref().unwrap().contains("unreachable"),
        "{:?}",
        gone.error
    );
    assert_eq!(
        overview
            .members
            .iter()
            .filter(|m| m.health.is_some())
            .count(),
        2
    );
}

/// Gives zone `demo` the site host name `host`.
async fn node1_admin_settings(client: &blindstore_client::Client, host: &str) {
    let change = blindstore_types::api::ZoneSettingsChange {
        site_hosts: Some(vec![host.to_owned()]),
        ..Default::default()
    };
    client
        .clone()
        .with_admin_token(ADMIN)
        .set_zone_settings(&demo(), &change)
        .await
        .unwrap();
}
