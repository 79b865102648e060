//! The one table of fixture cases (`node/tests/fixtures`, made by OpenSSL 3 with
//! `generate.sh`): which files, which passphrase, which waiver, and what must come out.
//! The library test (`node/tests/it/formats.rs`) and the CLI's `inspect` test
//! (`cli/tests/it/inspect.rs`) both run every case, so the two cannot drift apart.

/// Where the passphrase comes from: none, `pass.txt`'s, or `wrong-pass.txt`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    None,
    Right,
    Wrong,
}

/// The one check waived (`--allow-incomplete`, `--allow-expired`), if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waive {
    None,
    Incomplete,
    Expired,
}

/// What the files must make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A bundle: its completeness and key as the JSON report writes them (`no-root`,
    /// `rsa-2048`), how many certificates it serves (leaf and chain), one of its hostnames.
    Accept {
        completeness: &'static str,
        key: &'static str,
        certs: usize,
        host: &'static str,
    },
    /// Refused with this error code.
    Refuse(&'static str),
}

/// One case of the table.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    pub files: &'static [&'static str],
    pub pass: Pass,
    pub waive: Waive,
    pub expect: Expect,
}

const fn accept(
    completeness: &'static str,
    key: &'static str,
    certs: usize,
    host: &'static str,
) -> Expect {
    Expect::Accept {
        completeness,
        key,
        certs,
        host,
    }
}

use Expect::Refuse;

/// Every fixture class: each format and arrangement, each PKCS#12 variant, each bad file,
/// each refusal, each waiver, and the passphrase combinations.
pub const CASES: &[Case] = &[
    Case {
        files: &["fullchain-ec256.pem", "ec256.key"],
        pass: Pass::None,
        waive: Waive::None,
        expect: accept("complete", "ec-p256", 3, "ec256.example.test"),
    },
    Case {
        files: &["mixed-ec256.pem"],
        pass: Pass::None,
        waive: Waive::None,
        expect: accept("complete", "ec-p256", 3, "www.ec256.example.test"),
    },
    Case {
        files: &["reversed-ec256.pem", "ec256.key"],
        pass: Pass::None,
        waive: Waive::None,
        expect: accept("complete", "ec-p256", 3, "ec256.example.test"),
    },
    Case {
        files: &["dup-ec256.pem", "ec256.key"],
        pass: Pass::None,
        waive: Waive::None,
        expect: accept("no-root", "ec-p256", 2, "ec256.example.test"),
    },
    Case {
        files: &["chain.pem", "leaf-ec256.pem", "ec256.key"],
        pass: Pass::None,
        waive: Waive::None,
        expect: accept("complete", "ec-p256", 3, "ec256.example.test"),
    },
    Case {
        files: &["leaf-ec256.pem", "inter.pem", "ec256.key"],
        pass: Pass::None,
        waive: Waive::None,
        expect: accept("no-root", "ec-p256", 2, "ec256.example.test"),
    },
    Case {
        files: &["leaf-ec256.pem", "ec256.key"],
        pass: Pass::None,
        waive: Waive::None,
        expect: accept("leaf-only", "ec-p256", 1, "ec256.example.test"),
    },
    Case {
        files: &["leaf-ec256.der", "ec256.key.der", "chain.pem"],
        pass: Pass::None,
        waive: Waive::None,
        expect: accept("complete", "ec-p256", 3, "ec256.example.test"),
    },
    Case {
        files: &["leaf-ec256.der", "ec256.sec1.der"],
        pass: Pass::None,
        waive: Waive::None,
        expect: accept("leaf-only", "ec-p256", 1, "ec256.example.test"),
    },
    Case {
        files: &["leaf-ec256.pem", "ec256.sec1.pem", "inter.pem"],
        pass: Pass::None,
        waive: Waive::None,
        expect: accept("no-root", "ec-p256", 2, "ec256.example.test"),
    },
    Case {
        files: &["leaf-ec256.pem", "ec256.enc-pbkdf2.pem", "chain.pem"],
        pass: Pass::Right,
        waive: Waive::None,
        expect: accept("complete", "ec-p256", 3, "ec256.example.test"),
    },
    Case {
        files: &["leaf-ec256.pem", "ec256.enc-scrypt.pem", "chain.pem"],
        pass: Pass::Right,
        waive: Waive::None,
        expect: accept("complete", "ec-p256", 3, "ec256.example.test"),
    },
    Case {
        files: &["leaf-ec256.der", "ec256.enc-pbkdf2.der"],
        pass: Pass::Right,
        waive: Waive::None,
        expect: accept("leaf-only", "ec-p256", 1, "ec256.example.test"),
    },
    Case {
        files: &["leaf-ec384.pem", "ec384.key", "chain.pem"],
        pass: Pass::None,
        waive: Waive::None,
        expect: accept("complete", "ec-p384", 3, "ec384.example.test"),
    },
    Case {
        files: &["leaf-ec384.pem", "ec384.sec1.pem"],
        pass: Pass::None,
        waive: Waive::None,
        expect: accept("leaf-only", "ec-p384", 1, "ec384.example.test"),
    },
    Case {
        files: &["leaf-rsa2048.pem", "rsa2048.key", "chain.pem"],
        pass: Pass::None,
        waive: Waive::None,
        expect: accept("complete", "rsa-2048", 3, "rsa2048.example.test"),
    },
    Case {
        files: &["leaf-rsa2048.pem", "rsa2048.pkcs1.pem", "inter.pem"],
        pass: Pass::None,
        waive: Waive::None,
        expect: accept("no-root", "rsa-2048", 2, "rsa2048.example.test"),
    },
    Case {
        files: &["leaf-rsa2048.pem", "rsa2048.pkcs1.der"],
        pass: Pass::None,
        waive: Waive::None,
        expect: accept("leaf-only", "rsa-2048", 1, "rsa2048.example.test"),
    },
    Case {
        files: &["leaf-rsa3072.pem", "rsa3072.key", "chain.pem"],
        pass: Pass::None,
        waive: Waive::None,
        expect: accept("complete", "rsa-3072", 3, "rsa3072.example.test"),
    },
    Case {
        files: &["leaf-ed25519.pem", "ed25519.key", "chain.pem"],
        pass: Pass::None,
        waive: Waive::None,
        expect: accept("complete", "ed25519", 3, "ed25519.example.test"),
    },
    Case {
        files: &["leaf-wild.pem", "wild.key", "chain.pem"],
        pass: Pass::None,
        waive: Waive::None,
        expect: accept("complete", "ec-p256", 3, "*.wild.example.test"),
    },
    Case {
        files: &["leaf-cnonly.pem", "cnonly.key", "chain.pem"],
        pass: Pass::None,
        waive: Waive::None,
        expect: accept("complete", "ec-p256", 3, "cnonly.example.test"),
    },
    Case {
        files: &["leaf-deep.pem", "deep.key", "deepchain.pem"],
        pass: Pass::None,
        waive: Waive::None,
        expect: accept("complete", "ec-p256", 4, "deep.example.test"),
    },
    Case {
        files: &["selfsigned.pem", "selfsigned.key"],
        pass: Pass::None,
        waive: Waive::None,
        expect: accept("complete", "ec-p256", 1, "selfsigned.example.test"),
    },
    Case {
        files: &["ec256.p12"],
        pass: Pass::Right,
        waive: Waive::None,
        expect: accept("complete", "ec-p256", 3, "ec256.example.test"),
    },
    Case {
        files: &["ec256-legacy.p12"],
        pass: Pass::Right,
        waive: Waive::None,
        expect: accept("complete", "ec-p256", 3, "ec256.example.test"),
    },
    Case {
        files: &["ec256-3des.p12"],
        pass: Pass::Right,
        waive: Waive::None,
        expect: accept("complete", "ec-p256", 3, "ec256.example.test"),
    },
    Case {
        files: &["ec256-nopass.p12"],
        pass: Pass::None,
        waive: Waive::None,
        expect: accept("complete", "ec-p256", 3, "ec256.example.test"),
    },
    Case {
        files: &["ec256-nochain.p12"],
        pass: Pass::Right,
        waive: Waive::None,
        expect: accept("leaf-only", "ec-p256", 1, "ec256.example.test"),
    },
    Case {
        files: &["ec256-nochain.p12", "inter.pem"],
        pass: Pass::Right,
        waive: Waive::None,
        expect: accept("no-root", "ec-p256", 2, "ec256.example.test"),
    },
    Case {
        files: &["rsa2048.p12"],
        pass: Pass::Right,
        waive: Waive::None,
        expect: accept("complete", "rsa-2048", 3, "rsa2048.example.test"),
    },
    Case {
        files: &["rsa2048-legacy.p12"],
        pass: Pass::Right,
        waive: Waive::None,
        expect: accept("complete", "rsa-2048", 3, "rsa2048.example.test"),
    },
    Case {
        files: &["ed25519.p12"],
        pass: Pass::Right,
        waive: Waive::None,
        expect: accept("complete", "ed25519", 3, "ed25519.example.test"),
    },
    Case {
        files: &["ec256.p12", "ec256.key"],
        pass: Pass::Right,
        waive: Waive::None,
        expect: accept("complete", "ec-p256", 3, "ec256.example.test"),
    },
    Case {
        files: &["fullchain-ec256.pem", "ec256.key", "other-root.pem"],
        pass: Pass::None,
        waive: Waive::None,
        expect: accept("complete", "ec-p256", 3, "ec256.example.test"),
    },
    Case {
        files: &["leaf-ec256.pem", "ec256.key", "root.pem"],
        pass: Pass::None,
        waive: Waive::Incomplete,
        expect: accept("broken", "ec-p256", 1, "ec256.example.test"),
    },
    Case {
        files: &["leaf-expired.pem", "expired.key", "chain.pem"],
        pass: Pass::None,
        waive: Waive::Expired,
        expect: accept("complete", "ec-p256", 3, "expired.example.test"),
    },
    Case {
        files: &["leaf-notyet.pem", "notyet.key", "chain.pem"],
        pass: Pass::None,
        waive: Waive::Expired,
        expect: accept("complete", "ec-p256", 3, "notyet.example.test"),
    },
    Case {
        files: &["truncated.der"],
        pass: Pass::None,
        waive: Waive::None,
        expect: Refuse("corrupt_file"),
    },
    Case {
        files: &["truncated.pem", "ec256.key"],
        pass: Pass::None,
        waive: Waive::None,
        expect: Refuse("malformed_pem"),
    },
    Case {
        files: &["random.bin"],
        pass: Pass::None,
        waive: Waive::None,
        expect: Refuse("unrecognized_format"),
    },
    Case {
        files: &["text.txt"],
        pass: Pass::None,
        waive: Waive::None,
        expect: Refuse("unrecognized_format"),
    },
    Case {
        files: &["malformed.pem"],
        pass: Pass::None,
        waive: Waive::None,
        expect: Refuse("malformed_pem"),
    },
    Case {
        files: &["garbage-in-pem.pem"],
        pass: Pass::None,
        waive: Waive::None,
        expect: Refuse("malformed_pem"),
    },
    Case {
        files: &["empty.pem"],
        pass: Pass::None,
        waive: Waive::None,
        expect: Refuse("empty_file"),
    },
    Case {
        files: &["ec256.p12"],
        pass: Pass::None,
        waive: Waive::None,
        expect: Refuse("passphrase_required"),
    },
    Case {
        files: &["ec256.p12"],
        pass: Pass::Wrong,
        waive: Waive::None,
        expect: Refuse("wrong_passphrase"),
    },
    Case {
        files: &["ec256-legacy.p12"],
        pass: Pass::Wrong,
        waive: Waive::None,
        expect: Refuse("wrong_passphrase"),
    },
    Case {
        files: &["leaf-ec256.pem", "ec256.enc-pbkdf2.pem"],
        pass: Pass::None,
        waive: Waive::None,
        expect: Refuse("passphrase_required"),
    },
    Case {
        files: &["leaf-ec256.pem", "ec256.enc-pbkdf2.pem"],
        pass: Pass::Wrong,
        waive: Waive::None,
        expect: Refuse("wrong_passphrase"),
    },
    Case {
        files: &["leaf-ec256.pem", "ec256.enc-scrypt.pem"],
        pass: Pass::Wrong,
        waive: Waive::None,
        expect: Refuse("wrong_passphrase"),
    },
    Case {
        files: &["leaf-ec256.der", "ec256.enc-pbkdf2.der"],
        pass: Pass::Wrong,
        waive: Waive::None,
        expect: Refuse("wrong_passphrase"),
    },
    Case {
        files: &["bomb-scrypt.p8"],
        pass: Pass::Right,
        waive: Waive::None,
        expect: Refuse("kdf_limit"),
    },
    Case {
        files: &["bomb-scrypt.p8"],
        pass: Pass::None,
        waive: Waive::None,
        expect: Refuse("kdf_limit"),
    },
    Case {
        files: &["leaf-ec256.pem", "bomb-scrypt.pem"],
        pass: Pass::Right,
        waive: Waive::None,
        expect: Refuse("kdf_limit"),
    },
    Case {
        files: &["bomb-pbkdf2.p8"],
        pass: Pass::Right,
        waive: Waive::None,
        expect: Refuse("kdf_limit"),
    },
    Case {
        files: &["bomb-mac.p12"],
        pass: Pass::Right,
        waive: Waive::None,
        expect: Refuse("kdf_limit"),
    },
    Case {
        files: &["bomb-mac.p12"],
        pass: Pass::None,
        waive: Waive::None,
        expect: Refuse("kdf_limit"),
    },
    Case {
        files: &["bomb-keybag.p12"],
        pass: Pass::Right,
        waive: Waive::None,
        expect: Refuse("kdf_limit"),
    },
    Case {
        files: &["bomb-nested.p12"],
        pass: Pass::Right,
        waive: Waive::None,
        expect: Refuse("kdf_limit"),
    },
    Case {
        files: &["bomb-nested.p12"],
        pass: Pass::None,
        waive: Waive::None,
        expect: Refuse("passphrase_required"),
    },
    Case {
        files: &["leaf-manynames.pem", "manynames.key"],
        pass: Pass::None,
        waive: Waive::None,
        expect: Refuse("too_many_names"),
    },
    Case {
        files: &["fullchain-ec256.pem", "ec384.key"],
        pass: Pass::None,
        waive: Waive::None,
        expect: Refuse("key_mismatch"),
    },
    Case {
        files: &["fullchain-ec256.pem"],
        pass: Pass::None,
        waive: Waive::None,
        expect: Refuse("no_key"),
    },
    Case {
        files: &["ec256.key"],
        pass: Pass::None,
        waive: Waive::None,
        expect: Refuse("no_certificate"),
    },
    Case {
        files: &["fullchain-ec256.pem", "ec256.key", "ec384.key"],
        pass: Pass::None,
        waive: Waive::None,
        expect: Refuse("multiple_keys"),
    },
    Case {
        files: &["leaf-ec256.pem", "ec256.key", "root.pem"],
        pass: Pass::None,
        waive: Waive::None,
        expect: Refuse("broken_chain"),
    },
    Case {
        files: &["leaf-deep.pem", "deep.key", "inter.pem", "root.pem"],
        pass: Pass::None,
        waive: Waive::None,
        expect: Refuse("broken_chain"),
    },
    Case {
        files: &["leaf-expired.pem", "expired.key", "chain.pem"],
        pass: Pass::None,
        waive: Waive::None,
        expect: Refuse("expired"),
    },
    Case {
        files: &["leaf-notyet.pem", "notyet.key", "chain.pem"],
        pass: Pass::None,
        waive: Waive::None,
        expect: Refuse("not_yet_valid"),
    },
    Case {
        files: &["leaf-ec256.pem", "ec256.enc-scrypt.pem"],
        pass: Pass::None,
        waive: Waive::None,
        expect: Refuse("passphrase_required"),
    },
    Case {
        files: &["leaf-ec256.der", "ec256.enc-pbkdf2.der"],
        pass: Pass::None,
        waive: Waive::None,
        expect: Refuse("passphrase_required"),
    },
    Case {
        files: &["ec256-3des.p12"],
        pass: Pass::Wrong,
        waive: Waive::None,
        expect: Refuse("wrong_passphrase"),
    },
    Case {
        files: &["ec256-nochain.p12"],
        pass: Pass::None,
        waive: Waive::None,
        expect: Refuse("passphrase_required"),
    },
    Case {
        files: &["rsa2048.p12"],
        pass: Pass::Wrong,
        waive: Waive::None,
        expect: Refuse("wrong_passphrase"),
    },
    Case {
        files: &["rsa2048-legacy.p12"],
        pass: Pass::None,
        waive: Waive::None,
        expect: Refuse("passphrase_required"),
    },
    Case {
        files: &["ed25519.p12"],
        pass: Pass::Wrong,
        waive: Waive::None,
        expect: Refuse("wrong_passphrase"),
    },
    Case {
        files: &["leaf-expired.pem", "expired.key", "chain.pem"],
        pass: Pass::None,
        waive: Waive::Incomplete,
        expect: Refuse("expired"),
    },
    Case {
        files: &["leaf-ec256.pem", "ec256.key", "root.pem"],
        pass: Pass::None,
        waive: Waive::Expired,
        expect: Refuse("broken_chain"),
    },
];
