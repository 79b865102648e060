//! Bounded fuzzing of what peers and clients send (issue 19): the cluster port's CBOR
//! messages and the admin API's JSON bodies, decoded exactly as the node decodes them, from
//! arbitrary bytes and from mutations of valid messages; then mutated Raft messages sent to a
//! live node's cluster port, which must keep running and answering.
//!
//! The case counts (2,000 per property, 300 live messages) keep the run to seconds in CI;
//! `node/fuzz/` has the cargo-fuzz targets for unbounded runs of the parsers.

use proptest::prelude::*;
use serde::de::DeserializeOwned;

use certraft::api::dto::{BackupRequest, ExportRequest, ImportRequest, RestoreRequest};
use certraft::api::join::JoinRequest;
use certraft::raft::network::AdminTokenProposal;
use certraft::raft::TypeConfig;
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};

use crate::support::cluster::{Cluster, Options};

fn cbor<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).unwrap();
    out
}

/// Decodes as the cluster port does; the result does not matter, only that it returns.
fn decode_cbor<T: DeserializeOwned>(bytes: &[u8]) -> bool {
    ciborium::from_reader::<T, _>(bytes).is_ok()
}

fn decode_all_cbor(bytes: &[u8]) {
    let _ = decode_cbor::<AppendEntriesRequest<TypeConfig>>(bytes);
    let _ = decode_cbor::<VoteRequest<u64>>(bytes);
    let _ = decode_cbor::<InstallSnapshotRequest<TypeConfig>>(bytes);
    let _ = decode_cbor::<AdminTokenProposal>(bytes);
    let _ = certraft::inventory::codec::decode_request(bytes);
    let _ = certraft::inventory::codec::decode_snapshot(bytes);
}

fn decode_all_json(bytes: &[u8]) {
    let _ = serde_json::from_slice::<ImportRequest>(bytes);
    let _ = serde_json::from_slice::<ExportRequest>(bytes);
    let _ = serde_json::from_slice::<BackupRequest>(bytes);
    let _ = serde_json::from_slice::<RestoreRequest>(bytes);
    let _ = serde_json::from_slice::<JoinRequest>(bytes);
}

/// Valid messages to mutate: what members really send.
fn cbor_seeds() -> Vec<Vec<u8>> {
    let vote = VoteRequest::new(openraft::Vote::new(7, 2), None);
    let append = AppendEntriesRequest::<TypeConfig> {
        vote: openraft::Vote::new_committed(7, 2),
        prev_log_id: None,
        entries: vec![],
        leader_commit: None,
    };
    let proposal = AdminTokenProposal {
        name: "rescue".into(),
        secret_sha256: [3; 32],
    };
    vec![cbor(&vote), cbor(&append), cbor(&proposal)]
}

fn json_seeds() -> Vec<Vec<u8>> {
    vec![
        br#"{"files":[{"name":"a.pem","data":"AAAA"}],"passphrase":"p","name":"a","dry_run":true}"#.to_vec(),
        br#"{"format":"p12","passphrase":"correct horse battery","legacy":false}"#.to_vec(),
        br#"{"data":"AAAA","passphrase":"correct horse battery"}"#.to_vec(),
        br#"{"secret":"ab","csr":"AAAA","node_id":3,"role":"learner","cluster_addr":"127.0.0.1:1","admin_addr":"127.0.0.1:2"}"#.to_vec(),
    ]
}

/// Flips, overwrites, inserts and truncates bytes of `seed` as `edits` say.
fn mutate(mut bytes: Vec<u8>, edits: &[(u16, u8, u8)]) -> Vec<u8> {
    for &(at, value, kind) in edits {
        if bytes.is_empty() {
            bytes.push(value);
            continue;
        }
        let at = usize::from(at) % bytes.len();
        match kind % 4 {
            0 => bytes[at] ^= value | 1,
            1 => bytes[at] = value,
            2 => bytes.insert(at, value),
            _ => bytes.truncate(at),
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// No byte string makes a cluster-port or log decoder panic or hang.
    #[test]
    fn arbitrary_bytes_never_panic_a_cbor_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        decode_all_cbor(&bytes);
    }

    /// Mutations of real Raft messages and proposals never panic a decoder.
    #[test]
    fn mutated_raft_messages_never_panic(seed in 0usize..3, edits in proptest::collection::vec((any::<u16>(), any::<u8>(), any::<u8>()), 1..8)) {
        decode_all_cbor(&mutate(cbor_seeds()[seed].clone(), &edits));
    }

    /// No byte string and no mutation of a real body makes an admin API body decoder panic.
    #[test]
    fn admin_json_bodies_never_panic(seed in 0usize..4, edits in proptest::collection::vec((any::<u16>(), any::<u8>(), any::<u8>()), 0..8), junk in proptest::collection::vec(any::<u8>(), 0..512)) {
        decode_all_json(&mutate(json_seeds()[seed].clone(), &edits));
        decode_all_json(&junk);
    }
}

/// The hostile traffic node of the cluster suite (`certraft_cluster_tests::hostile`) builds
/// its Raft messages by hand: they must decode as the node's own types, or its attacks
/// would be refused as garbage (400) instead of by the role checks (403) they exercise.
#[test]
fn the_cluster_suites_forged_messages_decode_as_raft_messages() {
    use certraft_cluster_tests::hostile;
    let vote: VoteRequest<u64> =
        ciborium::from_reader(&hostile::vote_request(9, 4)[..]).expect("vote decodes");
    assert_eq!(vote.vote, openraft::Vote::new(9, 4));
    let append: AppendEntriesRequest<TypeConfig> =
        ciborium::from_reader(&hostile::append_request(9, 4)[..]).expect("append decodes");
    assert_eq!(append.vote, openraft::Vote::new_committed(9, 4));
    let p: AdminTokenProposal =
        ciborium::from_reader(&hostile::token_proposal("x")[..]).expect("proposal decodes");
    assert_eq!(p.name, "x");
}

/// A CBOR header that declares a 2^60-byte string, or a 2^60-element array, is refused
/// without the decoder reserving that much: it grows buffers as bytes arrive.
#[test]
fn declared_lengths_do_not_size_allocations() {
    for header in [
        vec![0x5b, 0x10, 0, 0, 0, 0, 0, 0, 0], // bytes, 8-byte length 2^60
        vec![0x9b, 0x10, 0, 0, 0, 0, 0, 0, 0], // array, 8-byte length 2^60
        vec![0x7b, 0x10, 0, 0, 0, 0, 0, 0, 0], // text, 8-byte length 2^60
    ] {
        decode_all_cbor(&header);
    }
}

/// Live cluster ports, fed 300 mutated Raft messages and proposals from a traffic node's
/// certificate, answer each (400 for what does not decode, 403 for what a learner may not
/// send) and keep serving: `/healthz` answers and the cluster still commits. (A learner's
/// certificate, so that what decodes is refused rather than obeyed: a voter's mutated
/// entries would be trusted, as Raft trusts its leader.)
#[tokio::test(flavor = "multi_thread")]
async fn live_cluster_ports_survive_mutated_messages() {
    let mut c = Cluster::start(2, Options::default()).await;
    let learner = c.join_as(0, "learner").await;
    c.wait_ready(learner).await;
    let s = crate::support::peer::secrets_of(&c.nodes[learner].data_dir);
    let seeds = cbor_seeds();
    // SplitMix64: reproducible edits without another dependency.
    let mut state = 0x5eed_u64;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut answered = 0;
    for target in [0, 1] {
        let client =
            crate::support::peer::cluster_client(&c, target, &s.node_cert_der, &s.node_key_pkcs8);
        let base = format!("https://127.0.0.1:{}/raft", c.nodes[target].cluster);
        for i in 0..150 {
            let edits: Vec<(u16, u8, u8)> = (0..1 + next() % 5)
                .map(|_| (next() as u16, next() as u8, next() as u8))
                .collect();
            let body = mutate(seeds[i % seeds.len()].clone(), &edits);
            let route = ["vote", "append", "propose", "snapshot", "failures"][i % 5];
            if let Ok(r) = client
                .post(format!("{base}/{route}"))
                .header("content-type", "application/cbor")
                .body(body)
                .send()
                .await
            {
                let status = r.status().as_u16();
                assert!(
                    matches!(status, 200 | 400 | 403 | 422),
                    "{route} at {}: {status}",
                    c.nodes[target].label
                );
                answered += 1;
            }
        }
    }
    assert!(answered > 280, "only {answered} of 300 answered");
    for i in 0..3 {
        assert_eq!(c.api(i).get("/healthz").await.status, 200);
    }
    c.api(1)
        .post(
            "/api/v1/certs",
            &crate::support::uploads::fixture_import(
                &["leaf-ec256.pem", "ec256.key", "chain.pem"],
                None,
            ),
        )
        .await
        .ok("an import after the fuzzing");
}
