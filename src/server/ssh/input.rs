//! Key presses from the raw bytes an SSH client sends for its terminal.
//!
//! Over SSH there is no local terminal to ask for key events: the client's terminal encodes each
//! key as bytes (xterm/VT sequences) and the console must decode them. [`KeyDecoder`] turns that
//! byte stream into the same `KeyEvent`s crossterm gives `shoal tui`, so the console's key map
//! works unchanged. It keeps an incomplete sequence across packets, and a lone ESC stays pending
//! until [`KeyDecoder::flush`] (the caller's short wait for more bytes ran out): that is the
//! Esc key. Bracketed paste (`ESC [200~ … ESC [201~`) becomes typed characters with control
//! characters dropped, so pasting a line into the filter never presses Enter or an action key.
//!
//! It owns decoding only: it never decides what a key does.
//!
//! Why not a crate: `terminput` (the maintained parser of this format) needs Rust 1.95, above
//! Shoal's MSRV, and `termwiz` brings a whole terminal library for one parser. The keys the
//! console uses are few and their encodings are fixed by xterm; the tests below pin each one.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

const ESC: u8 = 0x1b;
/// Longest escape sequence kept while waiting for its end; anything longer is not a key.
const MAX_SEQUENCE: usize = 64;
/// Longest paste kept; the rest of a larger paste is dropped (no console field needs more).
const MAX_PASTE: usize = 4096;

/// Decodes a terminal's byte stream into key presses.
#[derive(Debug, Default)]
pub struct KeyDecoder {
    /// Bytes of a sequence (or UTF-8 character) not complete yet.
    pending: Vec<u8>,
    /// Inside a bracketed paste: the text so far.
    paste: Option<Vec<u8>>,
}

/// What the front of the buffer holds.
enum Parsed {
    /// These keys, from this many bytes.
    Keys(Vec<KeyEvent>, usize),
    /// Not a key (an unknown sequence or a stray byte): skip this many bytes.
    Skip(usize),
    /// The start of something longer: wait for more bytes.
    Incomplete,
}

impl KeyDecoder {
    pub fn new() -> KeyDecoder {
        KeyDecoder::default()
    }

    /// Decodes `bytes` (following whatever came before) into key presses.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<KeyEvent> {
        self.pending.extend_from_slice(bytes);
        let mut keys = Vec::new();
        let mut start = 0;
        while start < self.pending.len() {
            let rest = &self.pending[start..];
            if let Some(paste) = &mut self.paste {
                match find(rest, b"\x1b[201~") {
                    Some(end) => {
                        keep_paste(paste, &rest[..end]);
                        keys.extend(pasted_keys(paste));
                        self.paste = None;
                        start += end + 6;
                    }
                    None => {
                        // Keep a tail that may be the start of the end marker.
                        let safe = rest.len().saturating_sub(5);
                        keep_paste(paste, &rest[..safe]);
                        start += safe;
                        break;
                    }
                }
                continue;
            }
            if rest.starts_with(b"\x1b[200~") {
                self.paste = Some(Vec::new());
                start += 6;
                continue;
            }
            match parse(rest) {
                Parsed::Keys(parsed, used) => {
                    keys.extend(parsed);
                    start += used;
                }
                Parsed::Skip(used) => start += used,
                Parsed::Incomplete if rest.len() > MAX_SEQUENCE => start += 1,
                Parsed::Incomplete => break,
            }
        }
        self.pending.drain(..start);
        keys
    }

    /// Whether bytes wait for the rest of a sequence (the caller should wait briefly for more,
    /// then [`flush`](Self::flush)).
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty() && self.paste.is_none()
    }

    /// No more bytes came: a lone ESC was the Esc key, ESC + an unfinished sequence is dropped.
    pub fn flush(&mut self) -> Vec<KeyEvent> {
        if self.paste.is_some() {
            return Vec::new();
        }
        let keys = if self.pending == [ESC] {
            vec![key(KeyCode::Esc)]
        } else {
            Vec::new()
        };
        self.pending.clear();
        keys
    }
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn with(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
    KeyEvent::new(code, modifiers)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn keep_paste(paste: &mut Vec<u8>, bytes: &[u8]) {
    let room = MAX_PASTE.saturating_sub(paste.len());
    paste.extend_from_slice(&bytes[..bytes.len().min(room)]);
}

/// Pasted text as typed characters; control characters (newlines included) are dropped.
fn pasted_keys(paste: &[u8]) -> Vec<KeyEvent> {
    String::from_utf8_lossy(paste)
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| key(KeyCode::Char(c)))
        .collect()
}

fn parse(bytes: &[u8]) -> Parsed {
    let Some(&first) = bytes.first() else {
        return Parsed::Incomplete;
    };
    match first {
        ESC => parse_escape(bytes),
        b'\r' | b'\n' => Parsed::Keys(vec![key(KeyCode::Enter)], 1),
        b'\t' => Parsed::Keys(vec![key(KeyCode::Tab)], 1),
        0x7f | 0x08 => Parsed::Keys(vec![key(KeyCode::Backspace)], 1),
        0x00 => Parsed::Keys(vec![with(KeyCode::Char(' '), KeyModifiers::CONTROL)], 1),
        0x01..=0x1a => {
            let letter = char::from(b'a' + first - 1);
            Parsed::Keys(vec![with(KeyCode::Char(letter), KeyModifiers::CONTROL)], 1)
        }
        0x1c..=0x1f => {
            let c = char::from(b'4' + first - 0x1c);
            Parsed::Keys(vec![with(KeyCode::Char(c), KeyModifiers::CONTROL)], 1)
        }
        _ => parse_char(bytes),
    }
}

/// One UTF-8 character.
fn parse_char(bytes: &[u8]) -> Parsed {
    let len = match bytes[0] {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => return Parsed::Skip(1),
    };
    if bytes.len() < len {
        return Parsed::Incomplete;
    }
    match std::str::from_utf8(&bytes[..len])
        .ok()
        .and_then(|s| s.chars().next())
    {
        Some(c) => Parsed::Keys(vec![key(KeyCode::Char(c))], len),
        None => Parsed::Skip(1),
    }
}

fn parse_escape(bytes: &[u8]) -> Parsed {
    match bytes.get(1) {
        None => Parsed::Incomplete,
        Some(b'[') => parse_csi(bytes),
        Some(b'O') => match bytes.get(2) {
            None => Parsed::Incomplete,
            Some(&last) => match final_key(last) {
                Some(code) => Parsed::Keys(vec![key(code)], 3),
                None => Parsed::Skip(3),
            },
        },
        // ESC ESC: the first was the Esc key.
        Some(&ESC) => Parsed::Keys(vec![key(KeyCode::Esc)], 1),
        // ESC + a key: that key with Alt (Meta sends ESC first).
        Some(_) => match parse(&bytes[1..]) {
            Parsed::Keys(keys, used) => Parsed::Keys(
                keys.into_iter()
                    .map(|k| with(k.code, k.modifiers | KeyModifiers::ALT))
                    .collect(),
                used + 1,
            ),
            Parsed::Skip(used) => Parsed::Skip(used + 1),
            Parsed::Incomplete => Parsed::Incomplete,
        },
    }
}

/// The key of a CSI or SS3 sequence ending in `last` with no number: arrows, Home, End, F1–F4.
fn final_key(last: u8) -> Option<KeyCode> {
    Some(match last {
        b'A' => KeyCode::Up,
        b'B' => KeyCode::Down,
        b'C' => KeyCode::Right,
        b'D' => KeyCode::Left,
        b'H' => KeyCode::Home,
        b'F' => KeyCode::End,
        b'P' => KeyCode::F(1),
        b'Q' => KeyCode::F(2),
        b'R' => KeyCode::F(3),
        b'S' => KeyCode::F(4),
        _ => return None,
    })
}

/// `ESC [ params final`: parameters are digits and `;`, the final byte is 0x40–0x7e.
fn parse_csi(bytes: &[u8]) -> Parsed {
    let Some(end) = bytes[2..].iter().position(|b| (0x40..=0x7e).contains(b)) else {
        return Parsed::Incomplete;
    };
    let end = end + 2;
    let used = end + 1;
    let Ok(params) = std::str::from_utf8(&bytes[2..end]) else {
        return Parsed::Skip(used);
    };
    let numbers: Vec<u16> = params.split(';').map(|p| p.parse().unwrap_or(0)).collect();
    // xterm's modifier parameter is 1 + a bit mask: 1 shift, 2 alt, 4 ctrl.
    let mask = numbers.get(1).copied().unwrap_or(1).saturating_sub(1);
    let mut modifiers = KeyModifiers::NONE;
    for (bit, modifier) in [
        (1, KeyModifiers::SHIFT),
        (2, KeyModifiers::ALT),
        (4, KeyModifiers::CONTROL),
    ] {
        if mask & bit != 0 {
            modifiers |= modifier;
        }
    }
    let code = match bytes[end] {
        b'Z' => return Parsed::Keys(vec![with(KeyCode::BackTab, KeyModifiers::SHIFT)], used),
        b'~' => match numbers.first().copied().unwrap_or(0) {
            1 | 7 => KeyCode::Home,
            2 => KeyCode::Insert,
            3 => KeyCode::Delete,
            4 | 8 => KeyCode::End,
            5 => KeyCode::PageUp,
            6 => KeyCode::PageDown,
            n @ 11..=15 => KeyCode::F((n - 10) as u8),
            n @ 17..=21 => KeyCode::F((n - 11) as u8),
            n @ 23..=24 => KeyCode::F((n - 12) as u8),
            _ => return Parsed::Skip(used),
        },
        last => match final_key(last) {
            Some(code) => code,
            None => return Parsed::Skip(used),
        },
    };
    Parsed::Keys(vec![with(code, modifiers)], used)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> Vec<KeyEvent> {
        let mut decoder = KeyDecoder::new();
        let mut keys = decoder.feed(bytes);
        keys.extend(decoder.flush());
        keys
    }

    fn codes(bytes: &[u8]) -> Vec<KeyCode> {
        decode(bytes).into_iter().map(|k| k.code).collect()
    }

    #[test]
    fn plain_and_utf8_characters() {
        assert_eq!(
            codes("aZ1:/é€".as_bytes()),
            ['a', 'Z', '1', ':', '/', 'é', '€'].map(KeyCode::Char)
        );
    }

    #[test]
    fn enter_tab_backspace_and_control_keys() {
        assert_eq!(
            codes(b"\r\n\t\x7f\x08"),
            [
                KeyCode::Enter,
                KeyCode::Enter,
                KeyCode::Tab,
                KeyCode::Backspace,
                KeyCode::Backspace
            ]
        );
        assert_eq!(
            decode(b"\x03\x06\x02\x12\x15\x17"),
            ['c', 'f', 'b', 'r', 'u', 'w'].map(|c| with(KeyCode::Char(c), KeyModifiers::CONTROL))
        );
    }

    #[test]
    fn arrows_in_both_cursor_modes_and_navigation_keys() {
        let expected = [KeyCode::Up, KeyCode::Down, KeyCode::Right, KeyCode::Left];
        assert_eq!(codes(b"\x1b[A\x1b[B\x1b[C\x1b[D"), expected);
        assert_eq!(codes(b"\x1bOA\x1bOB\x1bOC\x1bOD"), expected);
        assert_eq!(
            codes(b"\x1b[H\x1b[F\x1b[1~\x1b[4~\x1b[5~\x1b[6~\x1b[3~\x1b[2~"),
            [
                KeyCode::Home,
                KeyCode::End,
                KeyCode::Home,
                KeyCode::End,
                KeyCode::PageUp,
                KeyCode::PageDown,
                KeyCode::Delete,
                KeyCode::Insert
            ]
        );
        assert_eq!(
            decode(b"\x1b[Z"),
            [with(KeyCode::BackTab, KeyModifiers::SHIFT)]
        );
    }

    #[test]
    fn function_keys() {
        assert_eq!(
            codes(b"\x1bOP\x1bOQ\x1bOR\x1bOS\x1b[15~\x1b[17~\x1b[21~\x1b[24~"),
            [1, 2, 3, 4, 5, 6, 10, 12].map(KeyCode::F)
        );
    }

    #[test]
    fn modified_keys() {
        assert_eq!(
            decode(b"\x1b[1;5A\x1b[1;2B\x1b[6;3~"),
            [
                with(KeyCode::Up, KeyModifiers::CONTROL),
                with(KeyCode::Down, KeyModifiers::SHIFT),
                with(KeyCode::PageDown, KeyModifiers::ALT),
            ]
        );
        assert_eq!(
            decode(b"\x1bx"),
            [with(KeyCode::Char('x'), KeyModifiers::ALT)]
        );
    }

    #[test]
    fn a_lone_esc_is_the_esc_key_once_no_more_bytes_come() {
        let mut decoder = KeyDecoder::new();
        assert_eq!(decoder.feed(b"\x1b"), []);
        assert!(decoder.has_pending());
        assert_eq!(decoder.flush(), [key(KeyCode::Esc)]);
        assert!(!decoder.has_pending());
        assert_eq!(codes(b"\x1b\x1b[A"), [KeyCode::Esc, KeyCode::Up]);
    }

    #[test]
    fn sequences_split_across_packets_are_joined() {
        let mut decoder = KeyDecoder::new();
        assert_eq!(decoder.feed(b"j\x1b["), [key(KeyCode::Char('j'))]);
        assert_eq!(decoder.feed(b"1;5"), []);
        assert_eq!(
            decoder.feed(b"Cq"),
            [
                with(KeyCode::Right, KeyModifiers::CONTROL),
                key(KeyCode::Char('q'))
            ]
        );
        assert_eq!(decoder.feed(&[0xc3]), []);
        assert_eq!(decoder.feed(&[0xa9]), [key(KeyCode::Char('é'))]);
    }

    #[test]
    fn pasted_text_is_typed_without_control_characters() {
        let mut decoder = KeyDecoder::new();
        assert_eq!(decoder.feed(b"\x1b[200~fa"), []);
        assert!(!decoder.has_pending(), "a paste waits for its end marker");
        assert_eq!(
            decoder.feed(b"il\r\ns\x1b[20"),
            [],
            "nothing until the end marker"
        );
        assert_eq!(
            decoder.feed(b"1~R"),
            ['f', 'a', 'i', 'l', 's', 'R'].map(|c| key(KeyCode::Char(c)))
        );
    }

    #[test]
    fn unknown_sequences_and_invalid_bytes_are_skipped() {
        assert_eq!(
            codes(b"\x1b[99~a\xffb\x1b[?1;2cz"),
            ['a', 'b', 'z'].map(KeyCode::Char)
        );
        // An unterminated sequence longer than any key is given up: its bytes are typed.
        let mut long = b"\x1b[".to_vec();
        long.extend(std::iter::repeat_n(b'1', 100));
        let typed = codes(&long);
        assert_eq!(typed.len(), 101, "{typed:?}");
        assert_eq!(typed[0], KeyCode::Char('['));
    }
}
