use super::{cut_at_item, read_halves, read_split, sequence_start};
use crate::config::raw::{TypedAccount, TypedTokensFile, TypedTokensTail};
use crate::config::tokens_yaml::read;

/// Every cut the splitter could choose in `src` (one per item line of the sequence),
/// each read in two halves: `None`, or exactly what the whole-file reader reads.
/// Returns how many cuts were read in two halves.
#[track_caller]
fn every_cut_agrees(src: &str) -> usize {
    let whole = read::<TypedTokensFile>(src).map(|f| format!("{f:?}"));
    let Some((first, indent)) = sequence_start(src, "accounts") else {
        return 0;
    };
    let mut cuts: Vec<usize> = (first..src.len())
        .filter_map(|from| cut_at_item(src, from, indent))
        .collect();
    cuts.dedup();
    let mut split = 0;
    for cut in cuts {
        let halves = read_halves::<TypedAccount, TypedTokensTail>(src, first, cut, indent).map(
            |(accounts, tail)| {
                format!(
                    "{:?}",
                    TypedTokensFile {
                        accounts,
                        deleted_sids: tail.deleted_sids,
                    }
                )
            },
        );
        if halves.is_some() {
            split += 1;
            assert_eq!(halves, whole, "cut at byte {cut} of:\n{src}");
        }
    }
    split
}

fn account(id: &str, sids: &[&str]) -> String {
    let mut s = format!("  - id: {id}\n    name: \"Account {id}\"\n    tokens:\n");
    for sid in sids {
        s.push_str(&format!(
            "      # {sid}\n      - sid: {sid}\n        name: n-{sid}\n        scopes:\n          - {{api: a, methods: [GET]}}\n        allowed_ips:\n          - 203.0.113.0/24\n"
        ));
    }
    s
}

fn accounts() -> String {
    ["IR1", "IR2", "IR3", "IR4"]
        .iter()
        .enumerate()
        .map(|(i, id)| account(id, &[&format!("SG{i}a"), &format!("SG{i}b")]))
        .collect()
}

#[test]
fn a_file_in_the_written_shape_reads_the_same_at_every_cut() {
    let files = [
        format!("# tokens\naccounts:\n{}", accounts()),
        format!(
            "accounts:\n\n{}\ndeleted_sids:\n  - SGgone\n  - SGgone2\n",
            accounts()
        ),
        format!(
            "accounts: # all of them\n{}deleted_sids: [SGgone]\n",
            accounts()
        ),
        // The sequence at its key's indentation.
        format!(
            "accounts:\n{}",
            accounts().replace("\n  ", "\n").trim_start()
        ),
        // No newline at the end.
        format!("accounts:\n{}", accounts().trim_end()),
    ];
    for src in &files {
        assert!(every_cut_agrees(src) >= 3, "never split:\n{src}");
    }
}

#[test]
fn what_the_whole_file_reader_declines_is_never_read_in_halves() {
    let files = [
        // A second `accounts` (a duplicate key), with and without items.
        format!("accounts:\n{}accounts: []\n", accounts()),
        format!(
            "accounts:\n{}accounts:\n{}",
            accounts(),
            account("IR9", &["SG9"])
        ),
        // An unknown key after the accounts, or between them at the root.
        format!("accounts:\n{}other: 1\n", accounts()),
        format!(
            "accounts:\n{}x: 1\n{}",
            account("IR1", &["SG1"]),
            accounts()
        ),
        // A tab, a carriage return or a multi-line scalar in either half.
        format!(
            "accounts:\n{}",
            accounts().replacen("n-SG0a", "n-\tSG0a", 1)
        ),
        format!(
            "accounts:\n{}",
            accounts().replacen("n-SG3b", "n-SG3b\r", 1)
        ),
        format!(
            "accounts:\n{}",
            accounts().replacen("n-SG3a", "|\n          text", 1)
        ),
        // An item nested deeper than its siblings.
        format!(
            "accounts:\n{}",
            accounts().replacen("  - id: IR3", "   - id: IR3", 1)
        ),
    ];
    for src in &files {
        every_cut_agrees(src);
        assert!(
            read::<TypedTokensFile>(src).is_none(),
            "the whole-file reader reads:\n{src}"
        );
    }
}

#[test]
fn only_a_first_accounts_sequence_is_split() {
    for src in [
        format!("deleted_sids: []\naccounts:\n{}", accounts()),
        "accounts: []\n".to_owned(),
        "accounts:\n".to_owned(),
        String::new(),
    ] {
        assert!(
            read_split::<TypedAccount, TypedTokensTail>(&src, "accounts", 0).is_none(),
            "split:\n{src}"
        );
    }
}

#[test]
fn a_small_file_is_read_in_one_piece() {
    let src = format!("accounts:\n{}", accounts());
    assert!(read_split::<TypedAccount, TypedTokensTail>(&src, "accounts", src.len() + 1).is_none());
    let (accounts, tail) =
        read_split::<TypedAccount, TypedTokensTail>(&src, "accounts", 0).expect("split");
    assert_eq!(
        format!(
            "{:?}",
            TypedTokensFile {
                accounts,
                deleted_sids: tail.deleted_sids
            }
        ),
        format!("{:?}", read::<TypedTokensFile>(&src).expect("read")),
    );
}
