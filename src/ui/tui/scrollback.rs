//! A pane's scrollback, kept compact: the worker's output as lines of text with their SGR
//! colour sequences, at most a fixed number of lines.
//!
//! The live screen is a full terminal emulator (vt100), faithful to cursor movement; keeping
//! 10,000 lines of emulator cells would cost ~36 bytes per cell (~29 MB per 80-column
//! worker), so the history keeps bytes instead (~100 bytes per line). A carriage return
//! keeps the line's last state, as a progress line ends up on screen; other escape
//! sequences (cursor movement, titles) are dropped. Scrolled-back lines are drawn by feeding
//! them to a screen-sized emulator.

use std::collections::VecDeque;

/// Longest line kept (bytes); the rest of a longer line is dropped.
const MAX_LINE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Esc {
    /// Plain text.
    Text,
    /// After ESC.
    Start,
    /// Inside `ESC [`; the sequence so far is in `seq`.
    Csi,
    /// Inside `ESC ]` (up to BEL or ESC \).
    Osc,
    /// ESC inside an OSC (maybe its end).
    OscEnd,
}

/// The last `cap` lines of a worker's output.
#[derive(Debug)]
pub struct Scrollback {
    lines: VecDeque<Vec<u8>>,
    partial: Vec<u8>,
    cap: usize,
    esc: Esc,
    seq: Vec<u8>,
    /// A carriage return was seen: the next text overwrites the line.
    cr: bool,
}

impl Scrollback {
    /// Keeps at most `cap` lines.
    pub fn new(cap: usize) -> Scrollback {
        Scrollback {
            lines: VecDeque::new(),
            partial: Vec::new(),
            cap: cap.max(1),
            esc: Esc::Text,
            seq: Vec::new(),
            cr: false,
        }
    }

    /// Lines held, the unfinished last one included.
    pub fn len(&self) -> usize {
        self.lines.len() + usize::from(!self.partial.is_empty())
    }

    /// Whether nothing was kept yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Line `i` (0 = oldest held), with its SGR sequences.
    pub fn line(&self, i: usize) -> Option<&[u8]> {
        match self.lines.get(i) {
            Some(l) => Some(l),
            None if i == self.lines.len() && !self.partial.is_empty() => Some(&self.partial),
            None => None,
        }
    }

    fn push(&mut self, b: u8) {
        if self.cr {
            self.partial.clear();
            self.cr = false;
        }
        if self.partial.len() < MAX_LINE {
            self.partial.push(b);
        }
    }

    /// Every kept line as bytes that [`Scrollback::feed`] turns back into the same lines
    /// (each completed line ends with `\n`, the unfinished one last): what an attaching
    /// client gets as a pane's history (see [`crate::attach`]).
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for l in &self.lines {
            out.extend_from_slice(l);
            out.push(b'\n');
        }
        out.extend_from_slice(&self.partial);
        out
    }

    /// Feeds terminal output; returns how many lines it completed.
    pub fn feed(&mut self, bytes: &[u8]) -> usize {
        let mut completed = 0;
        for &b in bytes {
            match self.esc {
                Esc::Text => match b {
                    b'\n' => {
                        self.cr = false;
                        let line = std::mem::take(&mut self.partial);
                        if self.lines.len() == self.cap {
                            self.lines.pop_front();
                        }
                        self.lines.push_back(line);
                        completed += 1;
                    }
                    b'\r' => self.cr = true,
                    0x1b => self.esc = Esc::Start,
                    b'\t' => self.push(b),
                    0..=0x1f | 0x7f => {}
                    _ => self.push(b),
                },
                Esc::Start => {
                    self.esc = match b {
                        b'[' => {
                            self.seq.clear();
                            Esc::Csi
                        }
                        b']' => Esc::Osc,
                        _ => Esc::Text,
                    }
                }
                Esc::Csi => {
                    if (0x40..=0x7e).contains(&b) {
                        self.esc = Esc::Text;
                        if b == b'm' && self.seq.len() < 64 {
                            let seq = std::mem::take(&mut self.seq);
                            for c in [0x1b, b'['].into_iter().chain(seq).chain([b'm']) {
                                // Colours are not text: they survive a carriage return.
                                if self.partial.len() < MAX_LINE {
                                    self.partial.push(c);
                                }
                            }
                        }
                    } else if self.seq.len() < 64 {
                        self.seq.push(b);
                    }
                }
                Esc::Osc => match b {
                    0x07 => self.esc = Esc::Text,
                    0x1b => self.esc = Esc::OscEnd,
                    _ => {}
                },
                Esc::OscEnd => self.esc = if b == b'\\' { Esc::Text } else { Esc::Osc },
            }
        }
        completed
    }

    /// The `rows` lines that end `back` lines above the newest, as bytes for an emulator.
    pub fn window(&self, back: usize, rows: usize) -> Vec<u8> {
        let end = self.len().saturating_sub(back);
        let start = end.saturating_sub(rows);
        let mut out = Vec::new();
        for i in start..end {
            if i > start {
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"\x1b[0m");
            if let Some(l) = self.line(i) {
                out.extend_from_slice(l);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &Scrollback, i: usize) -> String {
        String::from_utf8_lossy(s.line(i).unwrap_or_default()).into_owned()
    }

    #[test]
    fn keeps_colours_and_the_last_state_of_a_progress_line() {
        let mut s = Scrollback::new(10);
        s.feed(b"\x1b[32mgreen\x1b[0m\r\nprogress 10%\rprogress 100%\r\n\x1b[2J\x1b[Hafter\x1b]0;title\x07");
        assert_eq!(text(&s, 0), "\x1b[32mgreen\x1b[0m");
        assert_eq!(text(&s, 1), "progress 100%");
        assert_eq!(text(&s, 2), "after");
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn holds_at_most_its_capacity() {
        let mut s = Scrollback::new(100);
        for i in 0..1000 {
            s.feed(format!("line {i}\n").as_bytes());
        }
        assert_eq!(s.len(), 100);
        assert_eq!(text(&s, 0), "line 900");
    }

    #[test]
    fn a_window_ends_where_the_view_is_scrolled_to() {
        let mut s = Scrollback::new(100);
        for i in 0..10 {
            s.feed(format!("l{i}\n").as_bytes());
        }
        assert_eq!(
            s.window(2, 3),
            b"\x1b[0ml5\r\n\x1b[0ml6\r\n\x1b[0ml7".to_vec()
        );
    }
}
