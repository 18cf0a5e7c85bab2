//! A prefix larger than one page (and than one gRPC message would carry at
//! fleet size) is read whole, in key order, as of one revision.

use sweep_e2e::Cluster;

#[test]
fn a_prefix_of_many_pages_is_read_whole_and_at_one_revision() {
    let c = Cluster::start().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut client = etcd_client::Client::connect([c.etcd_url.as_str()], None)
            .await
            .unwrap();
        for i in 0..1_234 {
            client
                .put(format!("/sweep/agents/h{i:05}"), "x".repeat(100), None)
                .await
                .unwrap();
        }
        client.put("/sweep/agents0", "outside", None).await.unwrap();
        client.put("/sweep/agent", "outside", None).await.unwrap();
        let (rev, kvs) = sweep_proto::coordination::etcd::get_prefix(&mut client, "/sweep/agents/")
            .await
            .unwrap();
        assert_eq!(kvs.len(), 1_234);
        let keys: Vec<String> = kvs
            .iter()
            .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(keys, sorted);
        assert_eq!(keys[0], "/sweep/agents/h00000");
        // A write after the read is not in it; the revision says where to
        // watch from.
        client.put("/sweep/agents/late", "x", None).await.unwrap();
        let (later, again) =
            sweep_proto::coordination::etcd::get_prefix(&mut client, "/sweep/agents/")
                .await
                .unwrap();
        assert_eq!(again.len(), 1_235);
        assert!(later > rev);
    });
}
