//! Keys: turning a key event into the bytes a terminal would send (for the worker's pty
//! while the keyboard is handed over), and the key that takes the keyboard back.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// The footer's key help in normal mode.
pub const HELP: &str = "Tab focus  z zoom  PgUp/PgDn scroll  i type (Ctrl-] back)  q leave";

/// Ctrl-] gives the keyboard back to the TUI (crossterm reports it as Ctrl-5 on terminals
/// that send 0x1d).
pub fn is_take_back(k: &KeyEvent) -> bool {
    k.modifiers.contains(KeyModifiers::CONTROL)
        && matches!(k.code, KeyCode::Char(']') | KeyCode::Char('5'))
}

/// The bytes a VT100-style terminal sends for `k`.
pub fn bytes(k: &KeyEvent) -> Vec<u8> {
    let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
    let alt = k.modifiers.contains(KeyModifiers::ALT);
    let mut out = Vec::new();
    if alt {
        out.push(0x1b);
    }
    match k.code {
        KeyCode::Char(c) if ctrl && c.is_ascii_alphabetic() => {
            out.push((c.to_ascii_lowercase() as u8) & 0x1f)
        }
        KeyCode::Char(c) if ctrl && ('4'..='7').contains(&c) => out.push(c as u8 - b'4' + 0x1c),
        KeyCode::Char(c) => {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
        KeyCode::Enter => out.push(b'\r'),
        KeyCode::Backspace => out.push(0x7f),
        KeyCode::Tab => out.push(b'\t'),
        KeyCode::BackTab => out.extend_from_slice(b"\x1b[Z"),
        KeyCode::Esc => out.push(0x1b),
        KeyCode::Up => out.extend_from_slice(b"\x1b[A"),
        KeyCode::Down => out.extend_from_slice(b"\x1b[B"),
        KeyCode::Right => out.extend_from_slice(b"\x1b[C"),
        KeyCode::Left => out.extend_from_slice(b"\x1b[D"),
        KeyCode::Home => out.extend_from_slice(b"\x1b[H"),
        KeyCode::End => out.extend_from_slice(b"\x1b[F"),
        KeyCode::PageUp => out.extend_from_slice(b"\x1b[5~"),
        KeyCode::PageDown => out.extend_from_slice(b"\x1b[6~"),
        KeyCode::Delete => out.extend_from_slice(b"\x1b[3~"),
        KeyCode::Insert => out.extend_from_slice(b"\x1b[2~"),
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, m: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, m)
    }

    #[test]
    fn typed_keys_become_terminal_bytes() {
        assert_eq!(bytes(&key(KeyCode::Char('x'), KeyModifiers::NONE)), b"x");
        assert_eq!(bytes(&key(KeyCode::Char('c'), KeyModifiers::CONTROL)), [3]);
        assert_eq!(bytes(&key(KeyCode::Enter, KeyModifiers::NONE)), b"\r");
        assert_eq!(bytes(&key(KeyCode::Up, KeyModifiers::NONE)), b"\x1b[A");
        assert_eq!(
            bytes(&key(KeyCode::Char('é'), KeyModifiers::NONE)),
            "é".as_bytes()
        );
    }

    #[test]
    fn ctrl_bracket_takes_the_keyboard_back() {
        assert!(is_take_back(&key(
            KeyCode::Char(']'),
            KeyModifiers::CONTROL
        )));
        assert!(is_take_back(&key(
            KeyCode::Char('5'),
            KeyModifiers::CONTROL
        )));
        assert!(!is_take_back(&key(KeyCode::Char(']'), KeyModifiers::NONE)));
    }
}
