//! Unit tests of `tls.rs` (kept beside it so the module itself stays readable).

use super::*;
use crate::pki::ClusterCa;

/// Regression (review item 10, the peers' half): a node forwarding to another's admin
/// port accepts only the certificate the membership pins for the node it names; a
/// certificate the same CA issued for that id (re-issued, or a removed node's) and one
/// for a node that is not a member are refused, as is one for another host.
#[test]
fn forwarders_accept_only_the_pinned_certificate_of_a_member() {
    let ca = ClusterCa::generate("c").unwrap();
    let hosts = ["127.0.0.1".to_string()];
    let pinned = ca.issue_node_cert(2, &hosts).unwrap();
    let reissued = ca.issue_node_cert(2, &hosts).unwrap();
    let stranger = ca.issue_node_cert(3, &hosts).unwrap();
    let members = Members::new([(
        2,
        Member {
            cert_sha256: Some(crate::pki::cert_sha256(&pinned.cert_der)),
            voter: true,
        },
    )]);
    assert!(member_admin_client_config(ca.cert_der(), members).is_ok());
    let v = MemberServerVerifier {
        inner: rustls::client::WebPkiServerVerifier::builder_with_provider(
            roots(ca.cert_der()).unwrap(),
            provider(),
        )
        .build()
        .unwrap(),
        members: Members::new([(
            2,
            Member {
                cert_sha256: Some(crate::pki::cert_sha256(&pinned.cert_der)),
                voter: true,
            },
        )]),
    };
    let check = |der: &[u8], host: &str| {
        v.verify_server_cert(
            &CertificateDer::from(der.to_vec()),
            &[],
            &ServerName::try_from(host.to_string()).unwrap(),
            &[],
            UnixTime::now(),
        )
        .is_ok()
    };
    assert!(check(&pinned.cert_der, "127.0.0.1"));
    assert!(!check(&pinned.cert_der, "10.9.9.9"), "another host");
    assert!(
        !check(&reissued.cert_der, "127.0.0.1"),
        "re-issued for the id"
    );
    assert!(!check(&stranger.cert_der, "127.0.0.1"), "not a member");
}
