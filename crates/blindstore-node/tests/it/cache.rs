//! Every member's memory cache of chunks, as a client meets it: a chunk asked of a member that
//! holds no copy costs one peer hop, not one per read; the cache reports itself.

use crate::cluster::{admin_json, demo, put_chunks, Cluster, ADMIN};

async fn peer_reads(url: &str) -> f64 {
    let text = reqwest::Client::new()
        .get(format!("{url}/v1/metrics"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(r#"blindstore_chunk_reads_total{source="peer"} "#))
        .map_or(0.0, |v| v.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_without_a_copy_fetches_a_chunk_once_then_serves_it_from_memory() {
    let cluster = Cluster::start(&[]);
    let clients = cluster.clients();
    let chunks = put_chunks(&clients, "read often", 1).await;
    let (hash, bytes) = &chunks[0];
    let admin = clients[0].clone().with_admin_token(ADMIN);
    let holders = admin.replicas(&demo(), hash).await.unwrap().node_ids;
    assert_eq!(holders.len(), 2);
    let members = admin.cluster().await.unwrap().members;
    let outsider = members
        .iter()
        .find(|m| !holders.contains(&m.node_id))
        .unwrap();
    let url = format!("http://{}", outsider.http_addr);
    let via = blindstore_client::Client::new(&url);

    let before = peer_reads(&url).await;
    for _ in 0..5 {
        assert_eq!(&via.get_chunk(&demo(), hash).await.unwrap(), bytes);
    }
    assert_eq!(
        peer_reads(&url).await - before,
        1.0,
        "one peer hop for five reads"
    );
    let cache = admin_json(&url, "/v1/admin/cache").await;
    assert!(cache["hits"].as_u64().unwrap() >= 4, "{cache}");
    assert!(
        cache["memory_bytes"].as_u64().unwrap() >= bytes.len() as u64,
        "{cache}"
    );
    assert_eq!(cache["memory_capacity"], 256u64 << 20, "{cache}");
    assert_eq!(
        cache["most_requested"][0]["hash"],
        hash.to_string(),
        "{cache}"
    );
    assert_eq!(cache["most_requested"][0]["requests"], 5, "{cache}");
    // Still a copy on two nodes only: the cache is not a replica.
    assert_eq!(
        admin.replicas(&demo(), hash).await.unwrap().node_ids.len(),
        2
    );
}
