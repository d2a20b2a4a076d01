//! The text screen: a status row on top and the log below it, kept in a
//! shadow copy so that the VGA buffer is only ever written, row by row, and
//! only where something changed (every VGA access is slow: it is device
//! memory on a PC and an emulated access under QEMU).

/// Columns and rows of VGA text mode 3.
pub const COLS: usize = 80;
pub const ROWS: usize = 25;
/// Rows the log scrolls in (row 0 is the status row).
pub const LOG_ROWS: usize = ROWS - 1;

/// Light grey on black, the colours a PC's text console starts with.
pub const LOG_ATTR: u8 = 0x07;
/// Black on light grey: the status row.
pub const STATUS_ATTR: u8 = 0x70;
/// Shown for bytes outside printable ASCII (the VGA font is code page
/// 437, not UTF-8).
pub const REPLACEMENT: u8 = b'?';
const TAB: usize = 8;

/// A VGA text cell: attribute in the high byte, character in the low.
pub const fn cell(attr: u8, ch: u8) -> u16 {
    (attr as u16) << 8 | ch as u16
}

pub struct Screen {
    cells: [[u16; COLS]; ROWS],
    /// The log's cursor: the row within the log area and the column.
    row: usize,
    col: usize,
    /// Rows changed since the last flush, bit i = screen row i.
    dirty: u32,
}

impl Default for Screen {
    fn default() -> Self {
        Self::new()
    }
}

impl Screen {
    /// A blank screen, every row to be drawn.
    pub const fn new() -> Self {
        let mut cells = [[cell(LOG_ATTR, b' '); COLS]; ROWS];
        let mut c = 0;
        while c < COLS {
            cells[0][c] = cell(STATUS_ATTR, b' ');
            c += 1;
        }
        Screen {
            cells,
            row: 0,
            col: 0,
            dirty: (1 << ROWS) - 1,
        }
    }

    /// Sets the status row's text (cut at the screen's width).
    pub fn set_status(&mut self, text: &[u8]) {
        let mut row = [cell(STATUS_ATTR, b' '); COLS];
        for (c, &b) in row.iter_mut().zip(text) {
            *c = cell(STATUS_ATTR, printable(b));
        }
        if row != self.cells[0] {
            self.cells[0] = row;
            self.dirty |= 1;
        }
    }

    /// Appends one byte of the log.
    pub fn put(&mut self, b: u8) {
        match b {
            b'\n' => self.newline(),
            // Lines end with \n; a \r before it must not blank the line.
            b'\r' => {}
            b'\t' => {
                let stop = (self.col / TAB + 1) * TAB;
                while self.col < stop.min(COLS) {
                    self.glyph(b' ');
                }
            }
            _ => self.glyph(printable(b)),
        }
    }

    fn glyph(&mut self, ch: u8) {
        if self.col == COLS {
            self.newline();
        }
        let r = 1 + self.row;
        self.cells[r][self.col] = cell(LOG_ATTR, ch);
        self.dirty |= 1 << r;
        self.col += 1;
    }

    fn newline(&mut self) {
        self.col = 0;
        if self.row + 1 < LOG_ROWS {
            self.row += 1;
            return;
        }
        // Scroll the log area up by one row.
        self.cells.copy_within(2..ROWS, 1);
        self.cells[ROWS - 1] = [cell(LOG_ATTR, b' '); COLS];
        self.dirty |= ((1 << ROWS) - 1) & !1;
    }

    #[cfg(test)]
    fn row_text(&self, row: usize) -> [u8; COLS] {
        let mut text = [0; COLS];
        for (t, c) in text.iter_mut().zip(&self.cells[row]) {
            *t = *c as u8;
        }
        text
    }

    /// Hands every changed row to `draw(row, cells)` and forgets the changes.
    pub fn flush(&mut self, mut draw: impl FnMut(usize, &[u16; COLS])) {
        for r in 0..ROWS {
            if self.dirty & (1 << r) != 0 {
                draw(r, &self.cells[r]);
            }
        }
        self.dirty = 0;
    }
}

/// The status row's text, built with `write!`; what does not fit the
/// screen's width is cut.
pub struct StatusText {
    bytes: [u8; COLS],
    len: usize,
}

impl Default for StatusText {
    fn default() -> Self {
        Self::new()
    }
}

impl StatusText {
    pub const fn new() -> Self {
        StatusText {
            bytes: [0; COLS],
            len: 0,
        }
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl core::fmt::Write for StatusText {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(COLS - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

fn printable(b: u8) -> u8 {
    if (0x20..0x7f).contains(&b) {
        b
    } else {
        REPLACEMENT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &Screen, row: usize) -> String {
        String::from_utf8(s.row_text(row).to_vec())
            .unwrap()
            .trim_end()
            .to_string()
    }

    fn type_in(s: &mut Screen, t: &str) {
        t.bytes().for_each(|b| s.put(b));
    }

    fn flushed_rows(s: &mut Screen) -> Vec<usize> {
        let mut rows = Vec::new();
        s.flush(|r, _| rows.push(r));
        rows
    }

    #[test]
    fn lines_fill_the_log_area_below_the_status_row() {
        let mut s = Screen::new();
        assert_eq!(
            flushed_rows(&mut s).len(),
            ROWS,
            "a new screen is drawn whole"
        );
        type_in(&mut s, "first\nsecond\n");
        assert_eq!(text(&s, 1), "first");
        assert_eq!(text(&s, 2), "second");
        assert_eq!(flushed_rows(&mut s), [1, 2]);
        assert!(flushed_rows(&mut s).is_empty());
        s.set_status(b"dingo console");
        assert_eq!(text(&s, 0), "dingo console");
        assert_eq!(s.cells[0][0] >> 8, STATUS_ATTR as u16);
        assert_eq!(s.cells[1][0] >> 8, LOG_ATTR as u16);
        assert_eq!(flushed_rows(&mut s), [0]);
        s.set_status(b"dingo console");
        assert!(
            flushed_rows(&mut s).is_empty(),
            "an unchanged status is not redrawn"
        );
    }

    #[test]
    fn long_lines_wrap_and_the_log_scrolls() {
        let mut s = Screen::new();
        type_in(&mut s, &"a".repeat(COLS + 5));
        assert_eq!(text(&s, 1), "a".repeat(COLS));
        assert_eq!(text(&s, 2), "aaaaa");
        // A line of exactly COLS leaves no empty row behind it.
        let mut s = Screen::new();
        type_in(&mut s, &format!("{}\nnext\n", "b".repeat(COLS)));
        assert_eq!(text(&s, 2), "next");

        let mut s = Screen::new();
        s.set_status(b"status");
        for i in 0..LOG_ROWS + 3 {
            type_in(&mut s, &format!("line {i}\n"));
        }
        flushed_rows(&mut s);
        // 27 lines and a trailing newline: lines 4..=26 then the empty cursor row.
        assert_eq!(text(&s, 0), "status", "the status row does not scroll");
        assert_eq!(text(&s, 1), "line 4");
        assert_eq!(text(&s, LOG_ROWS - 1), format!("line {}", LOG_ROWS + 2));
        assert_eq!(text(&s, LOG_ROWS), "");
        type_in(&mut s, "x\n");
        assert_eq!(
            flushed_rows(&mut s),
            (1..ROWS).collect::<Vec<_>>(),
            "a scroll redraws the log area"
        );
    }

    #[test]
    fn status_text_is_cut_at_the_width() {
        use core::fmt::Write;
        let mut t = StatusText::new();
        write!(t, "up {} s", 12).unwrap();
        assert_eq!(t.as_bytes(), b"up 12 s");
        write!(t, "{}", "x".repeat(2 * COLS)).unwrap();
        assert_eq!(t.as_bytes().len(), COLS);
    }

    #[test]
    fn tabs_control_and_non_ascii_bytes() {
        let mut s = Screen::new();
        type_in(&mut s, "a\tb\r\n");
        assert_eq!(text(&s, 1), "a       b");
        s.put(0x1b);
        "é".bytes().for_each(|b| s.put(b));
        s.put(b'\n');
        assert_eq!(text(&s, 2), "???");
    }
}
