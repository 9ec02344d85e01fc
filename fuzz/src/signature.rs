//! Owns the check of gitmq's signature parsers: the `gpgsig` header of a commit, the SSH
//! signature armor and blob, the allowed-signers file, and a whole commit's verdict.

use gitmq::git::sign::{
    gpgsig::{self, Found},
    sshsig::SshSig,
    AllowedSigners, PublicKey, Verdict, Verifier,
};
use gitmq::{git::hash::OBJECT_HASH, ObjectId};

/// `signature`: the input as a commit body (split off its signature, strip it, mark it as an
/// unsigned copy, verify it against a fixed allowed-signers file), as an armored signature
/// and as a signature blob (a parsed ed25519 one must write back to a blob that parses the
/// same; others keep only their algorithm name),
/// and as an allowed-signers file.
pub fn signature(data: &[u8]) {
    let (mut sig, mut payload) = (Vec::new(), Vec::new());
    let found = gpgsig::split(data, &mut sig, &mut payload);
    assert!(
        payload.len() <= data.len(),
        "the payload is part of the body"
    );
    if found == Found::Unsigned {
        assert_eq!(payload, data, "an unsigned body is its own payload");
    }
    let mut stripped = Vec::new();
    let had = gpgsig::strip(data, &mut stripped);
    assert_eq!(had, found != Found::Unsigned, "strip agrees with split");
    assert!(!gpgsig::is_signed(&stripped), "nothing signed is left");
    let mut copy = data.to_vec();
    gpgsig::mark_unsigned_copy(&mut copy, &ObjectId::null(OBJECT_HASH));
    assert!(!gpgsig::is_signed(&copy), "a marked copy has no signature");

    for parsed in [SshSig::from_armor(data), SshSig::from_blob(data)]
        .into_iter()
        .flatten()
        .filter(|parsed| parsed.ed25519.is_some())
    {
        let mut blob = Vec::new();
        parsed.write_blob(&mut blob);
        let again = SshSig::from_blob(&blob).expect("a written blob parses");
        assert_eq!(again, parsed, "blob round trip");
        let mut armor = Vec::new();
        parsed.write_armor(&mut armor);
        assert_eq!(SshSig::from_armor(&armor).expect("armor parses"), parsed);
    }

    let text = String::from_utf8_lossy(data);
    if let Ok(signers) = AllowedSigners::parse(&text) {
        for entry in signers.entries() {
            let _ = signers.allows(&entry.principals, &entry.key, "git", Some(0));
        }
    }

    let key = PublicKey::Ed25519([0x3b; 32]);
    let signers =
        AllowedSigners::parse(&format!("*@x {}\n", key.to_openssh())).expect("fixed file");
    match Verifier::new().verdict(data, &signers) {
        Verdict::Good { .. } => panic!("no input is signed by a key nobody holds"),
        Verdict::Unsigned => assert_eq!(found, Found::Unsigned),
        _ => {}
    }
}
