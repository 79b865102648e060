//! Unit tests of `cert.rs` (kept beside it so the module itself stays readable).

use super::*;

fn summary(name: &str, hosts: &[&str], not_after_unix: i64, is_default: bool) -> CertSummary {
    CertSummary {
        name: name.into(),
        id: "ab".repeat(32),
        hostnames: hosts.iter().map(|h| h.to_string()).collect(),
        subject: format!("CN={name}"),
        issuer: "C=US, O=certraft test, CN=certraft test intermediate".into(),
        not_before: "2024-01-01T00:00:00Z".into(),
        not_after: "2099-12-31T23:59:59Z".into(),
        not_after_unix,
        status: "active".into(),
        is_default,
        key: "ec-p256".into(),
        completeness: "no-root".into(),
        imported_at: "2025-01-01T00:00:00Z".into(),
        imported_by: "admin".into(),
    }
}

/// A table line's cells (columns are two or more spaces apart).
fn cells(line: &str) -> Vec<&str> {
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

/// The list table: default mark, at most two hostnames, the issuer's CN, date and
/// distance, status.
#[test]
fn list_table_rows() {
    let now = 1_000_000;
    let certs = [
        summary(
            "www",
            &["www.example.test", "example.test", "a.example.test"],
            now + 12 * 86_400,
            true,
        ),
        summary("api", &["api.example.test"], now - 3 * 86_400, false),
    ];
    let text = cert_table(&certs, now);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].contains("NAME") && lines[0].contains("NOT AFTER"),
        "{text}"
    );
    assert_eq!(
        cells(lines[1]),
        [
            "*",
            "www",
            "www.example.test,example.test +1",
            "certraft test intermediate",
            "2099-12-31 (in 12d)",
            "active"
        ],
        "{text}"
    );
    assert!(lines[2].starts_with("   api"), "{text}");
    assert_eq!(cells(lines[2])[3], "2099-12-31 (expired 3d ago)", "{text}");
}

#[test]
fn relative_times() {
    for (diff, want) in [
        (12 * 86_400 + 5, "in 12d"),
        (5 * 3600, "in 5h"),
        (90, "in 1m"),
        (0, "in 0m"),
        (-3 * 86_400, "expired 3d ago"),
        (-7200, "expired 2h ago"),
    ] {
        assert_eq!(relative(100_000_000 + diff, 100_000_000), want, "{diff}");
    }
}

#[test]
fn distinguished_names_shorten_to_their_cn() {
    assert_eq!(short_dn("C=US, O=Org, CN=Inter CA"), "Inter CA");
    assert_eq!(short_dn("CN=root"), "root");
    assert_eq!(short_dn("O=No Common Name"), "O=No Common Name");
}
