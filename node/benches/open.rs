//! Opening sealed bundles into serving-ready rustls `CertifiedKey`s.
//!
//! Target (issue 2): 100,000 sealed bundles open and parse in under 2 s on one core.
//! Peer: the same bundles kept as password-protected PKCS#12 (OpenSSL 3 defaults: PBKDF2,
//! 2048 iterations) and parsed with the import path, which is what "sealed PKCS#12 at rest"
//! would cost.
//!
//! Run: `taskset -c 0 cargo bench -p certraft-node --bench open` (env OPEN_BENCH_N to change N).

// A measuring tool, like a test: it stops on anything unexpected.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use certraft::bundle::{
    assemble, parse_file, AssembleOptions, Bundle, DataKey, Keyring, Passphrase, SealedBundle,
};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

const RUNS: usize = 5;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// N distinct bundles (own key, own leaf) under one CA, P-256 unless `rsa_key` is given.
fn make_bundles(n: usize, rsa_key: Option<&KeyPair>) -> Vec<Bundle> {
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "bench CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let started = Instant::now();
    (0..n)
        .map(|i| {
            if i > 0 && i % 20_000 == 0 {
                eprintln!("  made {i} bundles ({:.0?})", started.elapsed());
            }
            let owned;
            let key = match rsa_key {
                Some(k) => k,
                None => {
                    owned = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
                    &owned
                }
            };
            let params = CertificateParams::new(vec![format!("host{i}.bench.test")]).unwrap();
            let leaf = params.signed_by(key, &issuer).unwrap();
            let key_file = parse_file("key.der", &key.serialize_der(), None).unwrap();
            let leaf_file = parse_file("leaf.der", leaf.der(), None).unwrap();
            let ca_file = parse_file("ca.der", ca_cert.der(), None).unwrap();
            assemble(
                vec![key_file, leaf_file, ca_file],
                AssembleOptions::default(),
                now(),
            )
            .unwrap()
        })
        .collect()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn measure(label: &str, sealed: &[SealedBundle], keyring: &Keyring) -> Duration {
    let mut full = Vec::new();
    let mut decrypt_only = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let keys: Vec<Arc<rustls::sign::CertifiedKey>> = sealed
            .iter()
            .map(|s| s.open_certified(keyring).unwrap())
            .collect();
        full.push(t.elapsed());
        black_box(keys);
        let t = Instant::now();
        for s in sealed {
            black_box(s.open(keyring).unwrap());
        }
        decrypt_only.push(t.elapsed());
    }
    let m = median(full.clone());
    println!(
        "{label}: open + parse {} sealed bundles into CertifiedKey: median {:.3} s over {RUNS} runs ({:.2} µs/bundle; runs {:?})",
        sealed.len(),
        m.as_secs_f64(),
        m.as_secs_f64() * 1e6 / sealed.len() as f64,
        full.iter().map(|d| format!("{:.3}", d.as_secs_f64())).collect::<Vec<_>>()
    );
    let d = median(decrypt_only);
    println!(
        "{label}:   of which AES-256-GCM open + decode only: median {:.3} s ({:.2} µs/bundle)",
        d.as_secs_f64(),
        d.as_secs_f64() * 1e6 / sealed.len() as f64
    );
    m
}

/// The peer: the same bundle as an OpenSSL-3-default PKCS#12, opened by the import path.
fn pkcs12_per_bundle(bundle: &Bundle) -> Duration {
    let pass = Passphrase::new("bench passphrase");
    let parts = certraft::bundle::ExportParts::from(bundle);
    let chain: Vec<_> = parts
        .certs
        .iter()
        .map(|c| p12_keystore::Certificate::from_der(c).unwrap())
        .collect();
    let entry = p12_keystore::PrivateKeyChain::new(parts.key_pkcs8, [1u8; 20], chain);
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry("b", p12_keystore::KeyStoreEntry::PrivateKeyChain(entry));
    let p12 = store
        .writer(pass.expose())
        .encryption_iterations(2048)
        .mac_iterations(2048)
        .write()
        .unwrap();
    let samples = 200;
    let mut runs = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        for _ in 0..samples {
            let f = parse_file("b.p12", &p12, Some(&pass)).unwrap();
            let b = assemble(vec![f], AssembleOptions::default(), now()).unwrap();
            black_box(b.certified_key());
        }
        runs.push(t.elapsed() / samples);
    }
    median(runs)
}

fn main() {
    let n: usize = std::env::var("OPEN_BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let keyring = Keyring::new(DataKey::generate(1));

    eprintln!("making {n} P-256 bundles (leaf + CA)...");
    let bundles = make_bundles(n, None);
    let sealed: Vec<SealedBundle> = bundles.iter().map(|b| b.seal(&keyring)).collect();
    let ours = measure("P-256", &sealed, &keyring);
    let per = pkcs12_per_bundle(&bundles[0]);
    let peer_total = per * n as u32;
    println!(
        "P-256: peer, PKCS#12 at rest (PBKDF2 2048 it., OpenSSL 3 default): {:.1} µs/bundle → {:.1} s for {n}",
        per.as_secs_f64() * 1e6,
        peer_total.as_secs_f64()
    );
    println!(
        "P-256: sealed record is {:.0}x faster than PKCS#12 at rest; target < 2 s for 100,000: {}",
        peer_total.as_secs_f64() / ours.as_secs_f64(),
        if ours.as_secs_f64() * 100_000.0 / n as f64 <= 2.0 {
            "met"
        } else {
            "MISSED"
        }
    );
    drop(sealed);
    drop(bundles);

    let rsa_n = (n / 10).max(1);
    let rsa_pem = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/rsa2048.key"
    ))
    .unwrap();
    let rsa_file = parse_file("rsa2048.key", &rsa_pem, None).unwrap();
    let rsa_der =
        rustls::pki_types::PrivatePkcs8KeyDer::from(rsa_file.keys[0].pkcs8_der().to_vec());
    let rsa_key = KeyPair::from_pkcs8_der_and_sign_algo(&rsa_der, &rcgen::PKCS_RSA_SHA256).unwrap();
    eprintln!("making {rsa_n} RSA-2048 bundles...");
    let bundles = make_bundles(rsa_n, Some(&rsa_key));
    let sealed: Vec<SealedBundle> = bundles.iter().map(|b| b.seal(&keyring)).collect();
    measure("RSA-2048", &sealed, &keyring);
}
