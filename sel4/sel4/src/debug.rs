//! Debug printing. On a debug kernel it goes to the kernel console; a
//! kernel built without printing (the release flavour) has none, so a
//! program may register its own console, e.g. a UART it has I/O port
//! rights to (`uart_put_char` on x86_64). Without either it prints nothing.
//! Either way a program may also register a mirror ([`set_mirror`]) that
//! sees every byte printed, e.g. to copy it into the system log ring.

static CONSOLE: spin::Once<fn(u8)> = spin::Once::new();
static MIRROR: spin::Once<fn(u8)> = spin::Once::new();

/// Where output goes on kernels without printing. A program has one
/// console: the first registration stays, later ones are ignored.
pub fn set_console(put: fn(u8)) {
    CONSOLE.call_once(|| put);
}

/// Where every printed byte goes as well, whatever the console. As for
/// the console, the first registration stays.
pub fn set_mirror(put: fn(u8)) {
    MIRROR.call_once(|| put);
}

/// Prints one byte on the kernel console, or on the registered console,
/// and hands it to the mirror.
#[inline]
pub fn debug_put_char(c: u8) {
    if let Some(mirror) = MIRROR.get() {
        mirror(c);
    }
    #[cfg(sel4_printing)]
    crate::syscall::debug_put_char(c);
    #[cfg(not(sel4_printing))]
    {
        if let Some(put) = CONSOLE.get() {
            put(c);
        }
    }
}

/// `core::fmt` sink for [`debug_put_char`]; used by [`debug_print!`](crate::debug_print).
pub struct DebugWriter;

impl core::fmt::Write for DebugWriter {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        s.bytes().for_each(debug_put_char);
        Ok(())
    }
}

/// `print!` for the debug console.
#[macro_export]
macro_rules! debug_print {
    ($($arg:tt)*) => {{
        let _ = core::fmt::Write::write_fmt(&mut $crate::DebugWriter, format_args!($($arg)*));
    }};
}

/// `println!` for the debug console.
#[macro_export]
macro_rules! debug_println {
    () => { $crate::debug_print!("\n") };
    ($($arg:tt)*) => {{
        $crate::debug_print!($($arg)*);
        $crate::debug_print!("\n");
    }};
}
