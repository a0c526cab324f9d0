//! Where panes go: a grid that fits the body, or, when the panes would be too small to read,
//! a list of targets beside the focused pane. Pure arithmetic on rectangles.

use ratatui::layout::Rect;

/// The narrowest readable pane (columns).
pub const MIN_COLS: u16 = 38;
/// The lowest readable pane (rows, title included): a title and nine lines of output. Fewer
/// lines show too little of a build (or of a failure and its rescue shell) to follow; more
/// panes than fit this way become the list beside the focused pane.
pub const MIN_ROWS: u16 = 10;
/// Width of the target list when panes do not fit.
pub const LIST_COLS: u16 = 30;

/// The body's arrangement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arrangement {
    /// One rectangle per pane, in pane order.
    Grid(Vec<Rect>),
    /// A list of targets and the focused pane.
    List {
        /// The list.
        list: Rect,
        /// The focused pane.
        pane: Rect,
    },
}

/// Arranges `n` panes in `body`. Picks the column count whose panes are the largest in
/// "readable" terms (a row counts as three columns: text is wide); the last row's panes share
/// its width. Panes are separated by one column.
pub fn arrange(n: usize, body: Rect) -> Arrangement {
    if n == 0 {
        return Arrangement::Grid(Vec::new());
    }
    let mut best: Option<(u32, u16)> = None;
    for c in 1..=n as u16 {
        let r = (n as u16).div_ceil(c);
        let w = body.width.saturating_sub(c - 1) / c;
        let h = body.height / r;
        if w < MIN_COLS || h < MIN_ROWS {
            continue;
        }
        let score = u32::from(w).min(3 * u32::from(h));
        if best.is_none_or(|(s, _)| score > s) {
            best = Some((score, c));
        }
    }
    let Some((_, cols)) = best else {
        let list_w = LIST_COLS.min(body.width / 3);
        return Arrangement::List {
            list: Rect::new(body.x, body.y, list_w, body.height),
            pane: Rect::new(
                body.x + list_w + 1,
                body.y,
                body.width.saturating_sub(list_w + 1),
                body.height,
            ),
        };
    };
    let rows = (n as u16).div_ceil(cols);
    let mut rects = Vec::with_capacity(n);
    for row in 0..rows {
        let in_row = (n as u16 - row * cols).min(cols);
        let y = body.y + row * body.height / rows;
        let h = body.y + (row + 1) * body.height / rows - y;
        let usable = body.width.saturating_sub(in_row - 1);
        for col in 0..in_row {
            let x0 = col * usable / in_row;
            let x1 = (col + 1) * usable / in_row;
            rects.push(Rect::new(body.x + x0 + col, y, x1 - x0, h));
        }
    }
    Arrangement::Grid(rects)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_panes_fit_80x24_readably() {
        let Arrangement::Grid(r) = arrange(4, Rect::new(0, 3, 80, 20)) else {
            panic!("4 panes must fit 80x24");
        };
        assert_eq!(r.len(), 4);
        assert!(r
            .iter()
            .all(|r| r.width >= MIN_COLS && r.height >= MIN_ROWS));
    }

    #[test]
    fn too_many_panes_become_a_list_and_the_focused_pane() {
        for (n, w, h) in [(7, 80, 20), (20, 80, 20), (32, 200, 56)] {
            assert!(
                matches!(arrange(n, Rect::new(0, 3, w, h)), Arrangement::List { .. }),
                "{n} panes in {w}x{h}"
            );
        }
        assert!(matches!(
            arrange(7, Rect::new(0, 3, 200, 56)),
            Arrangement::Grid(_)
        ));
    }

    #[test]
    fn panes_do_not_overlap_and_stay_inside() {
        let body = Rect::new(0, 3, 160, 44);
        for n in 1..=8 {
            let Arrangement::Grid(r) = arrange(n, body) else {
                panic!("{n} panes must fit");
            };
            for (i, a) in r.iter().enumerate() {
                assert!(body.contains(a.as_position()) && a.right() <= body.right());
                for b in &r[i + 1..] {
                    assert!(!a.intersects(*b), "{n}: {a:?} overlaps {b:?}");
                }
            }
        }
    }
}
