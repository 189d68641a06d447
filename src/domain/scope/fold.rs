//! Unicode folding of decoded path segments: owns the refusal of every segment that an upstream
//! which folds Unicode (NFKC-normalizing frameworks, Windows "best-fit" code page conversion,
//! Windows' trailing dot/space trim) could read as a different path than the gateway authorized.
//!
//! Why per character: NFKC maps a character to ASCII only through that character's own
//! compatibility decomposition (composition never produces ASCII), so "no non-ASCII character
//! folds to ASCII" means the ASCII skeleton of a segment is the same for the gateway and for
//! any NFKC or best-fit reader. The segment rules (dots and spaces) then only have to look at
//! that skeleton.

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

use super::target::TargetError;

/// Code points that Windows best-fit conversion (`WideCharToMultiByte` without
/// `WC_NO_BEST_FIT_CHARS`, .NET `Encoding.GetBytes` with the default fallback) turns into an
/// ASCII byte the gateway treats as structural: `.`, `/`, `\`, `%`, `;` or a control byte.
///
/// Source: the `WCTABLE` sections of Microsoft's best-fit tables published by Unicode,
/// <https://www.unicode.org/Public/MAPPINGS/VENDORS/MICSFT/WindowsBestFit/> (`bestfit874.txt`
/// ... `bestfit1258.txt`, `bestfit932/936/949/950/1361.txt`), keeping every entry whose
/// target byte decodes (through the same file's `MBTABLE`) to one of those ASCII characters.
/// The code pages are listed per entry. Entries that NFKC already folds to ASCII (fullwidth
/// forms) are kept so the table alone documents the best-fit reading. Sorted by code point.
const BEST_FIT_TO_STRUCTURAL_ASCII: &[(char, u8, &str)] = &[
    (
        '\u{00A5}',
        b'\\',
        "932 (yen sign is the backslash byte in Shift-JIS)",
    ),
    ('\u{00A7}', 0x15, "874"),
    ('\u{00B4}', b'/', "1253"),
    ('\u{00B6}', 0x14, "874"),
    ('\u{037E}', b';', "1250, 1252, 1253"),
    ('\u{066A}', b'%', "1250, 1252, 1254"),
    ('\u{203C}', 0x13, "874"),
    ('\u{2044}', b'/', "1250, 1252, 1254"),
    (
        '\u{20A9}',
        b'\\',
        "949, 1361 (won sign is the backslash byte in Korean code pages)",
    ),
    ('\u{2190}', 0x1B, "874"),
    ('\u{2191}', 0x18, "874"),
    ('\u{2192}', 0x1A, "874"),
    ('\u{2193}', 0x19, "874"),
    ('\u{2194}', 0x1D, "874"),
    ('\u{2195}', 0x12, "874"),
    ('\u{21A8}', 0x17, "874"),
    ('\u{2215}', b'/', "1250, 1252, 1254"),
    ('\u{2216}', b'\\', "1250, 1252, 1254"),
    ('\u{221F}', 0x1C, "874"),
    ('\u{2302}', 0x7F, "874"),
    ('\u{25AC}', 0x16, "874"),
    ('\u{25B2}', 0x1E, "874"),
    ('\u{25BA}', 0x10, "874"),
    ('\u{25BC}', 0x1F, "874"),
    ('\u{25C4}', 0x11, "874"),
    ('\u{25CB}', 0x09, "874"),
    ('\u{25D8}', 0x08, "874"),
    ('\u{25D9}', 0x0A, "874"),
    ('\u{263A}', 0x01, "874"),
    ('\u{263B}', 0x02, "874"),
    ('\u{263C}', 0x0F, "874"),
    ('\u{2640}', 0x0C, "874"),
    ('\u{2642}', 0x0B, "874"),
    ('\u{2660}', 0x06, "874"),
    ('\u{2663}', 0x05, "874"),
    ('\u{2665}', 0x03, "874"),
    ('\u{2666}', 0x04, "874"),
    ('\u{266A}', 0x0D, "874"),
    ('\u{266B}', 0x0E, "874"),
    ('\u{FF05}', b'%', "874, 1250-1258"),
    ('\u{FF0E}', b'.', "874, 1250-1258"),
    ('\u{FF0F}', b'/', "874, 1250-1258"),
    ('\u{FF1B}', b';', "874, 1250-1258"),
    ('\u{FF3C}', b'\\', "874, 1250-1258"),
];

/// The best-fit ASCII byte of `c`, when it is a structural one.
pub fn best_fit_structural(c: char) -> Option<u8> {
    BEST_FIT_TO_STRUCTURAL_ASCII
        .binary_search_by_key(&c, |&(from, _, _)| from)
        .ok()
        .map(|i| BEST_FIT_TO_STRUCTURAL_ASCII[i].1)
}

/// Whether some reading of `c` is ASCII: its NFKC form contains an ASCII character (fullwidth
/// and other compatibility forms, leaders, ligatures, superscripts, no-break spaces...), or
/// Windows best-fit turns it into a structural ASCII byte.
///
/// Such a character is refused even when it folds to a letter: `/users/ａdmin` is read as
/// `/users/admin` by an NFKC upstream, another resource than the one the gateway matched,
/// logged and routed (possibly a more specific API with its own upstream).
pub fn folds_to_ascii(c: char) -> bool {
    !c.is_ascii()
        && (best_fit_structural(c).is_some() || std::iter::once(c).nfkc().any(|f| f.is_ascii()))
}

/// Characters that readers drop or that render as nothing: a segment made of dots and these is
/// still a dot segment to somebody. Default-ignorable code points (DerivedCoreProperties.txt)
/// and combining marks.
fn is_invisible(c: char) -> bool {
    is_combining_mark(c)
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{061C}'
                | '\u{115F}'..='\u{1160}'
                | '\u{17B4}'..='\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{FFF0}'..='\u{FFF8}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0000}'..='\u{E0FFF}'
        )
}

/// Checks one percent-decoded path segment (never empty, never `.`/`..`: the byte-level pass
/// refused those) against every folding reading. `refuse_non_ascii` is the operator's option
/// to accept ASCII paths only.
pub fn check_segment(decoded: &str, refuse_non_ascii: bool) -> Result<(), TargetError> {
    if !decoded.is_ascii() {
        if refuse_non_ascii {
            return Err(TargetError::NonAsciiRefused);
        }
        if decoded.chars().any(folds_to_ascii) {
            return Err(TargetError::CompatibilityCharacter);
        }
    }
    // The segment as a trimming, mark-stripping reader sees it.
    let mut visible = decoded.chars().filter(|&c| !is_invisible(c)).peekable();
    if visible.peek().is_none() {
        // Only invisible characters: an empty segment once they are dropped.
        return Err(TargetError::EmptySegment);
    }
    let mut only_dots_and_spaces = true;
    let mut has_dot = false;
    let mut last = ' ';
    for c in visible {
        match c {
            '.' => has_dot = true,
            ' ' => {}
            _ => only_dots_and_spaces = false,
        }
        last = c;
    }
    if only_dots_and_spaces && has_dot {
        return Err(TargetError::DotSegment);
    }
    // Windows drops trailing dots and spaces: `Items.` and `Items%20` are `Items` there,
    // another resource than the one matched (possibly a more specific API).
    if last == '.' || last == ' ' {
        return Err(TargetError::TrailingDotOrSpace);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_fit_table_is_sorted_and_structural() {
        for pair in BEST_FIT_TO_STRUCTURAL_ASCII.windows(2) {
            assert!(
                pair[0].0 < pair[1].0,
                "{:?} before {:?}",
                pair[0].0,
                pair[1].0
            );
        }
        for &(from, to, _) in BEST_FIT_TO_STRUCTURAL_ASCII {
            assert!(!from.is_ascii());
            assert!(
                matches!(to, b'.' | b'/' | b'\\' | b'%' | b';' | 0x00..=0x1F | 0x7F),
                "{from:?}"
            );
            assert!(folds_to_ascii(from));
        }
    }

    #[test]
    fn compatibility_forms_of_structural_characters_fold() {
        for c in [
            '\u{FF0E}',  // fullwidth full stop
            '\u{FF0F}',  // fullwidth solidus
            '\u{FF3C}',  // fullwidth reverse solidus
            '\u{FF05}',  // fullwidth percent
            '\u{FF1B}',  // fullwidth semicolon
            '\u{2024}',  // one dot leader
            '\u{2025}',  // two dot leader
            '\u{2026}',  // horizontal ellipsis
            '\u{FE52}',  // small full stop
            '\u{FE68}',  // small reverse solidus
            '\u{FE6A}',  // small percent sign
            '\u{00A0}',  // no-break space
            '\u{3000}',  // ideographic space
            '\u{2215}',  // division slash (best-fit only)
            '\u{00A5}',  // yen sign (best-fit 932 only)
            '\u{20A9}',  // won sign (best-fit 949 only)
            '\u{FF41}',  // fullwidth a
            '\u{1D41A}', // mathematical bold a
            '\u{FB01}',  // fi ligature
            '\u{00B2}',  // superscript two
        ] {
            assert!(folds_to_ascii(c), "{c:?} U+{:04X}", c as u32);
        }
    }

    #[test]
    fn ordinary_non_ascii_does_not_fold() {
        for c in [
            'é', 'ł', 'ß', 'Ж', '日', '€', '😀', '\u{0301}', 'µ', '°', '\u{3002}',
        ] {
            assert!(!folds_to_ascii(c), "{c:?}");
        }
    }

    #[test]
    fn segments() {
        use TargetError::*;
        let cases: &[(&str, Result<(), TargetError>)] = &[
            ("a", Ok(())),
            ("José", Ok(())),
            ("Jose\u{301}", Ok(())),
            ("a.b", Ok(())),
            ("..a", Ok(())),
            (".a", Ok(())),
            ("a b", Ok(())),
            ("日本", Ok(())),
            (".. ", Err(DotSegment)),
            (". .", Err(DotSegment)),
            (" ..", Err(DotSegment)),
            ("...", Err(DotSegment)),
            (".\u{200B}.", Err(DotSegment)),
            ("..\u{301}", Err(DotSegment)),
            ("\u{FEFF}", Err(EmptySegment)),
            (" ", Err(TrailingDotOrSpace)),
            ("a.", Err(TrailingDotOrSpace)),
            ("a ", Err(TrailingDotOrSpace)),
            ("a.\u{200B}", Err(TrailingDotOrSpace)),
            ("\u{FF0E}\u{FF0E}", Err(CompatibilityCharacter)),
            ("\u{2025}", Err(CompatibilityCharacter)),
            ("a\u{FF0F}b", Err(CompatibilityCharacter)),
            ("\u{FF41}dmin", Err(CompatibilityCharacter)),
            ("..\u{3000}", Err(CompatibilityCharacter)),
        ];
        for (segment, want) in cases {
            assert_eq!(check_segment(segment, false), *want, "{segment:?}");
        }
        assert_eq!(check_segment("José", true), Err(NonAsciiRefused));
        assert_eq!(check_segment("Jose", true), Ok(()));
    }
}
