//! One test per class of system.xml mistake, each asserting the complete
//! list of diagnostics: file, line, column, message and expectation. Exact
//! lists also show that one mistake does not cascade into others.
//!
//! Columns count from 1; the test bodies indent elements by 4 and their
//! children by 8 spaces, so `<protection_domain` starts at column 5 and
//! `<map` at column 9.

mod common;

use common::{assert_diags, sys};

/// A PD named `name` with image pd.elf and `children` inside; three lines
/// plus one per child.
fn pd(name: &str, attrs: &str, children: &[&str]) -> String {
    let mut s = format!(
        "\n    <protection_domain name=\"{name}\"{attrs}>\n        <program_image path=\"pd.elf\"/>"
    );
    for c in children {
        s.push_str("\n        ");
        s.push_str(c);
    }
    s.push_str("\n    </protection_domain>");
    s
}

#[test]
fn unknown_elements() {
    let xml = sys(&format!(
        "{}\n    <memory_regoin name=\"x\" size=\"0x1000\"/>\n    <channel>\n        <end pd=\"a\" id=\"0\"/>\n        <end pd=\"a\" id=\"1\"><x/></end>\n        <edn/>\n    </channel>",
        pd("a", "", &["<maps mr=\"x\"/>"])
    ));
    assert_diags(
        &xml,
        &[
            "system.xml:4:9: error: unknown element <maps> inside <protection_domain>; expected one of: program_image, map, irq, ioport, setvar",
            "system.xml:6:5: error: unknown element <memory_regoin> inside <system>; expected one of: protection_domain, memory_region, channel",
            "system.xml:9:28: error: unexpected element <x> inside <end>; expected <end> to have no child elements",
            "system.xml:10:9: error: unknown element <edn> inside <channel>; expected exactly two <end> elements",
        ],
    );
}

#[test]
fn unknown_attributes() {
    let xml = sys(r#"
    <protection_domain name="a" prio="3">
        <program_image path="pd.elf" size="1"/>
    </protection_domain>
    <channel kind="x">
    </channel>"#);
    assert_diags(
        &xml,
        &[
            "system.xml:2:33: error: unknown attribute 'prio' on <protection_domain>; expected one of: name, priority, budget, period, passive, stack_size, smc, cpu",
            "system.xml:3:38: error: unknown attribute 'size' on <program_image>; expected one of: path",
            "system.xml:5:5: error: <channel> has 0 <end> element(s); expected exactly two <end> elements",
            "system.xml:5:14: error: unknown attribute 'kind' on <channel>; expected <channel> without attributes",
        ],
    );
}

#[test]
fn missing_required_attributes() {
    let xml = sys(&format!(
        "\n    <memory_region size=\"0x1000\"/>{}\n    <protection_domain priority=\"1\">\n        <program_image path=\"pd.elf\"/>\n    </protection_domain>",
        pd(
            "a",
            "",
            &["<map mr=\"r\"/>", "<irq pin=\"1\" vector=\"2\"/>"]
        )
    ));
    assert_diags(
        &xml,
        &[
            "system.xml:2:5: error: <memory_region> is missing the required attribute 'name'; expected name=\"...\" giving a unique memory region name",
            "system.xml:5:9: error: <map> is missing the required attribute 'vaddr'; expected vaddr=\"...\" giving the virtual address to map at",
            "system.xml:6:9: error: <irq> is missing the required attribute 'id'; expected id=\"...\" giving the channel id",
            "system.xml:8:5: error: <protection_domain> is missing the required attribute 'name'; expected name=\"...\" giving a unique protection domain name",
        ],
    );
}

#[test]
fn duplicate_pd_and_region_names() {
    let xml = sys(&format!(
        "\n    <memory_region name=\"buf\" size=\"0x1000\"/>\n    <memory_region name=\"buf\" size=\"0x2000\"/>{}{}",
        pd("a", "", &["<map mr=\"buf\" vaddr=\"0x1000000\"/>"]),
        pd("a", " priority=\"3\"", &[])
    ));
    assert_diags(
        &xml,
        &[
            "system.xml:3:20: error: duplicate memory region name 'buf' (first declared at 2:20); expected a unique name for every <memory_region>",
            "system.xml:8:24: error: duplicate protection domain name 'a' (first declared at 4:24); expected a unique name for every <protection_domain>",
        ],
    );
}

#[test]
fn maps_that_overlap_each_other() {
    let xml = sys(&format!(
        "\n    <memory_region name=\"r1\" size=\"0x2000\"/>\n    <memory_region name=\"r2\" size=\"0x1000\"/>{}",
        pd(
            "a",
            "",
            &[
                "<map mr=\"r1\" vaddr=\"0x1000000\"/>",
                "<map mr=\"r2\" vaddr=\"0x1001000\"/>"
            ]
        )
    ));
    assert_diags(
        &xml,
        &[
            "system.xml:7:9: error: map of 'r2' [0x1001000..0x1002000) overlaps the map of 'r1' [0x1000000..0x1002000) at 6:9 in protection domain 'a'; expected the maps of one protection domain at disjoint virtual ranges",
        ],
    );
}

#[test]
fn map_that_overlaps_the_program_image() {
    // gcc -static places the first (read-only) segment of pd.elf at 0x400000.
    let xml = sys(&format!(
        "\n    <memory_region name=\"r\" size=\"0x1000\"/>{}",
        pd("a", "", &["<map mr=\"r\" vaddr=\"0x400000\"/>"])
    ));
    assert_diags(
        &xml,
        &[
            "system.xml:5:9: error: map of 'r' [0x400000..0x401000) overlaps the loadable segment [0x400000..0x401000) (r--) of program image 'pd.elf' in protection domain 'a'; expected maps outside the pages of the program image's segments",
        ],
    );
}

#[test]
fn maps_that_overlap_the_reserved_areas() {
    let reserved = "maps outside the reserved areas (stack [0x7fffffe000..0x8000000000), stack guard page [0x7fffffd000..0x7fffffe000), IPC buffer [0x10000000000..0x10000001000), recovery page [0x10000001000..0x10000002000))";
    let xml = sys(&format!(
        "\n    <memory_region name=\"r\" size=\"0x1000\"/>{}",
        pd(
            "a",
            "",
            &[
                "<map mr=\"r\" vaddr=\"0x7fffffd000\"/>",
                "<map mr=\"r\" vaddr=\"0x7fffffe000\"/>",
                "<map mr=\"r\" vaddr=\"0x10000000000\"/>",
            ]
        )
    ));
    assert_diags(
        &xml,
        &[
            &format!(
                "system.xml:5:9: error: map of 'r' [0x7fffffd000..0x7fffffe000) overlaps the stack guard page [0x7fffffd000..0x7fffffe000) that the monitor reserves in every protection domain; expected {reserved}"
            ),
            &format!(
                "system.xml:6:9: error: map of 'r' [0x7fffffe000..0x7ffffff000) overlaps the stack [0x7fffffe000..0x8000000000) that the monitor reserves in every protection domain; expected {reserved}"
            ),
            &format!(
                "system.xml:7:9: error: map of 'r' [0x10000000000..0x10000001000) overlaps the IPC buffer [0x10000000000..0x10000001000) that the monitor reserves in every protection domain; expected {reserved}"
            ),
        ],
    );
}

#[test]
fn larger_stack_moves_the_guard_page() {
    // With a 64 KiB stack the guard page is at STACK_TOP - 0x11000 = 0x7ffffef000.
    let xml = sys(&format!(
        "\n    <memory_region name=\"r\" size=\"0x1000\"/>{}",
        pd(
            "a",
            " stack_size=\"0x10000\"",
            &["<map mr=\"r\" vaddr=\"0x7ffffef000\"/>"]
        )
    ));
    assert_diags(
        &xml,
        &[
            "system.xml:5:9: error: map of 'r' [0x7ffffef000..0x7fffff0000) overlaps the stack guard page [0x7ffffef000..0x7fffff0000) that the monitor reserves in every protection domain; expected maps outside the reserved areas (stack [0x7fffff0000..0x8000000000), stack guard page [0x7ffffef000..0x7fffff0000), IPC buffer [0x10000000000..0x10000001000), recovery page [0x10000001000..0x10000002000))",
        ],
    );
}

#[test]
fn maps_not_page_aligned_or_outside_user_space() {
    let xml = sys(&format!(
        "\n    <memory_region name=\"r\" size=\"0x2000\"/>\n    <memory_region name=\"big\" size=\"0x200000\" page_size=\"0x200000\"/>{}",
        pd(
            "a",
            "",
            &[
                "<map mr=\"r\" vaddr=\"0x1000800\"/>",
                "<map mr=\"big\" vaddr=\"0x2001000\"/>",
                "<map mr=\"r\" vaddr=\"0x7ffffffff000\"/>",
            ]
        )
    ));
    assert_diags(
        &xml,
        &[
            "system.xml:6:21: error: map of 'r' at vaddr 0x1000800 is not aligned to the region's page size 0x1000; expected a vaddr that is a multiple of 0x1000",
            "system.xml:7:23: error: map of 'big' at vaddr 0x2001000 is not aligned to the region's page size 0x200000; expected a vaddr that is a multiple of 0x200000",
            "system.xml:8:21: error: map of 'r' at vaddr 0x7ffffffff000 (size 0x2000) reaches past the end of user address space 0x800000000000; expected vaddr + size <= 0x800000000000",
        ],
    );
}

#[test]
fn region_sizes_and_addresses_not_page_multiples() {
    let xml = sys(r#"
    <memory_region name="a" size="0x1800"/>
    <memory_region name="b" size="0x201000" page_size="0x200000"/>
    <memory_region name="c" size="0x1000" phys_addr="0xfebf0800"/>
    <memory_region name="d" size="0x1000" page_size="0x3000"/>
    <memory_region name="e" size="0"/>"#);
    assert_diags(
        &xml,
        &[
            "system.xml:2:29: error: memory region size 0x1800 is not a multiple of the page size 0x1000; expected a multiple of 0x1000",
            "system.xml:3:29: error: memory region size 0x201000 is not a multiple of the page size 0x200000; expected a multiple of 0x200000",
            "system.xml:4:43: error: phys_addr 0xfebf0800 is not aligned to the page size 0x1000; expected a multiple of 0x1000",
            "system.xml:5:43: error: page_size 0x3000 is not an x86_64 page size; expected page_size=\"0x1000\" or page_size=\"0x200000\"",
            "system.xml:6:29: error: memory region size is 0; expected a positive multiple of the page size",
        ],
    );
}

#[test]
fn physical_regions_that_overlap() {
    let xml = sys(&format!(
        "\n    <memory_region name=\"a\" size=\"0x2000\" phys_addr=\"0xfe000000\"/>\n    <memory_region name=\"b\" size=\"0x1000\" phys_addr=\"0xfe001000\"/>{}",
        pd(
            "p",
            "",
            &[
                "<map mr=\"a\" vaddr=\"0x1000000\"/>",
                "<map mr=\"b\" vaddr=\"0x2000000\"/>"
            ]
        )
    ));
    assert_diags(
        &xml,
        &[
            "system.xml:3:43: error: memory region 'b' at physical [0xfe001000..0xfe002000) overlaps memory region 'a' at physical [0xfe000000..0xfe002000) (declared at 2:5); expected disjoint physical ranges for regions with phys_addr",
        ],
    );
}

#[test]
fn unused_region_is_a_warning() {
    // The warning alone does not fail the load, so pair it with an error.
    let xml = sys(&format!(
        "\n    <memory_region name=\"spare\" size=\"0x1000\"/>{}",
        pd("a", " priority=\"300\"", &[])
    ));
    assert_diags(
        &xml,
        &[
            "system.xml:2:20: warning: memory region 'spare' is not mapped by any protection domain; expected a <map mr=\"spare\" .../> in some protection domain, or no such region",
            "system.xml:3:33: error: priority 300 on <protection_domain> is out of range; expected priority between 0 and 254",
        ],
    );
}

#[test]
fn channel_ids_out_of_range() {
    let xml = sys(&format!(
        "{}{}\n    <channel>\n        <end pd=\"a\" id=\"62\"/>\n        <end pd=\"b\" id=\"0\"/>\n    </channel>",
        pd("a", "", &["<irq id=\"70\" pin=\"1\" vector=\"1\"/>"]),
        pd("b", "", &[])
    ));
    assert_diags(
        &xml,
        &[
            "system.xml:4:14: error: id 70 on <irq> is out of range; expected id between 0 and 61",
            "system.xml:10:21: error: id 62 on <end> is out of range; expected id between 0 and 61",
        ],
    );
}

#[test]
fn channel_ids_used_twice_in_one_pd() {
    let xml = sys(&format!(
        "{}{}\n    <channel>\n        <end pd=\"a\" id=\"1\"/>\n        <end pd=\"b\" id=\"0\"/>\n    </channel>\n    <channel>\n        <end pd=\"a\" id=\"2\"/>\n        <end pd=\"b\" id=\"0\"/>\n    </channel>",
        pd("a", "", &["<irq id=\"1\" pin=\"1\" vector=\"1\"/>"]),
        pd("b", "", &[])
    ));
    assert_diags(
        &xml,
        &[
            "system.xml:10:21: error: id 1 is already used in protection domain 'a' by an irq at 4:14; expected ids unique within a protection domain across its channels and irqs (0..=61)",
            "system.xml:15:21: error: id 0 is already used in protection domain 'b' by the channel to 'a' at 11:21; expected ids unique within a protection domain across its channels and irqs (0..=61)",
        ],
    );
}

#[test]
fn channel_end_naming_an_unknown_pd() {
    let xml = sys(&format!(
        "{}{}\n    <channel>\n        <end pd=\"a\" id=\"0\"/>\n        <end pd=\"nobody\" id=\"0\"/>\n    </channel>",
        pd("a", "", &[]),
        pd("b", "", &[])
    ));
    assert_diags(
        &xml,
        &[
            "system.xml:10:14: error: channel end names unknown protection domain 'nobody'; expected the name of a <protection_domain> (declared: a, b)",
        ],
    );
}

#[test]
fn channel_with_both_ends_in_one_pd_or_wrong_end_count() {
    let xml = sys(&format!(
        "{}\n    <channel>\n        <end pd=\"a\" id=\"0\"/>\n        <end pd=\"a\" id=\"1\"/>\n    </channel>\n    <channel>\n        <end pd=\"a\" id=\"2\"/>\n    </channel>",
        pd("a", "", &[])
    ));
    assert_diags(
        &xml,
        &[
            "system.xml:7:14: error: both ends of the channel are protection domain 'a'; expected a channel between two different protection domains",
            "system.xml:9:5: error: <channel> has 1 <end> element(s); expected exactly two <end> elements",
        ],
    );
}

#[test]
fn pp_to_equal_or_lower_priority() {
    let xml = sys(&format!(
        "{}{}{}\n    <channel>\n        <end pd=\"client\" id=\"0\" pp=\"true\"/>\n        <end pd=\"server\" id=\"0\"/>\n    </channel>\n    <channel>\n        <end pd=\"low\" id=\"0\"/>\n        <end pd=\"server\" id=\"1\" pp=\"true\"/>\n    </channel>\n    <channel>\n        <end pd=\"low\" id=\"1\" pp=\"true\"/>\n        <end pd=\"client\" id=\"1\" pp=\"true\"/>\n    </channel>",
        pd("server", " priority=\"10\"", &[]),
        pd("client", " priority=\"10\"", &[]),
        pd("low", " priority=\"5\"", &[])
    ));
    assert_diags(
        &xml,
        &[
            "system.xml:12:33: error: 'client' (priority 10) calls 'server' (priority 10) through pp=\"true\", but a protected procedure call must go to a strictly higher priority; expected 'server' to have a priority above 10",
            "system.xml:17:33: error: 'server' (priority 10) calls 'low' (priority 5) through pp=\"true\", but a protected procedure call must go to a strictly higher priority; expected 'low' to have a priority above 10",
            "system.xml:21:33: error: both ends of the channel have pp=\"true\"; a protected procedure call goes one way only; expected pp=\"true\" on at most one end (the caller)",
        ],
    );
}

#[test]
fn irq_pin_and_vector_conflicts() {
    let xml = sys(&format!(
        "{}{}",
        pd(
            "a",
            "",
            &[
                "<irq id=\"0\" pin=\"4\" vector=\"10\"/>",
                "<irq id=\"1\" pcidev=\"00:04.0\" handle=\"0\" vector=\"20\"/>",
            ]
        ),
        pd(
            "b",
            "",
            &[
                "<irq id=\"0\" pin=\"4\" vector=\"11\"/>",
                "<irq id=\"1\" ioapic=\"0\" pin=\"5\" vector=\"10\"/>",
                "<irq id=\"2\" pcidev=\"00:04.0\" handle=\"0\" vector=\"21\"/>",
                "<irq id=\"3\" pin=\"6\" vector=\"20\"/>",
            ]
        )
    ));
    assert_diags(
        &xml,
        &[
            "system.xml:9:9: error: IOAPIC 0 pin 4 of protection domain 'b' is already used by the irq of 'a' at 4:9; expected each IOAPIC pin claimed by one irq only",
            "system.xml:10:9: error: irq vector 10 of protection domain 'b' is already used by the irq of 'a' at 4:9; expected a distinct vector for every irq in the system",
            "system.xml:11:9: error: MSI handle 0 of PCI device 00:04.0 in protection domain 'b' is already used by the irq of 'a' at 5:9; expected each PCI device MSI handle claimed by one irq only",
            "system.xml:12:9: error: irq vector 20 of protection domain 'b' is already used by the irq of 'a' at 5:9; expected a distinct vector for every irq in the system",
        ],
    );
}

#[test]
fn irq_attribute_values() {
    let xml = sys(&pd(
        "a",
        "",
        &[
            "<irq id=\"0\" pin=\"24\" vector=\"108\"/>",
            "<irq id=\"1\" pin=\"1\" vector=\"1\" trigger=\"rising\" polarity=\"up\"/>",
            "<irq id=\"2\" pcidev=\"00:20.0\" handle=\"0\" vector=\"2\"/>",
            "<irq id=\"3\" irq=\"33\"/>",
            "<irq id=\"4\" pcidev=\"00:01.0\" pin=\"3\" vector=\"3\"/>",
        ],
    ));
    assert_diags(
        &xml,
        &[
            "system.xml:4:21: error: pin 24 on <irq> is out of range; expected pin between 0 and 23",
            "system.xml:4:30: error: vector 108 on <irq> is out of range; expected vector between 0 and 107",
            "system.xml:5:40: error: trigger=\"rising\" is not a trigger mode; expected trigger=\"level\" or trigger=\"edge\"",
            "system.xml:5:57: error: polarity=\"up\" is not a polarity; expected polarity=\"high\" or polarity=\"low\"",
            "system.xml:6:21: error: pcidev=\"00:20.0\" is not a PCI address; expected bus:dev.func in hexadecimal, with bus <= ff, dev <= 1f, func <= 7 (for example 00:03.0)",
            "system.xml:7:9: error: <irq irq=\"...\"> is the ARM/RISC-V form, which x86_64 does not have; expected pin=\"...\" and vector=\"...\" for an IOAPIC interrupt, or pcidev=\"bus:dev.func\", handle=\"...\" and vector=\"...\" for an MSI",
            "system.xml:7:21: error: unknown attribute 'irq' on <irq>; expected one of: id, setvar_id, ioapic, pin, trigger, polarity, vector",
            "system.xml:8:21: error: unknown attribute 'pcidev' on <irq>; expected one of: id, setvar_id, ioapic, pin, trigger, polarity, vector",
        ],
    );
}

#[test]
fn io_port_ranges_that_overlap() {
    let xml = sys(&format!(
        "{}{}",
        pd("a", "", &["<ioport id=\"0\" addr=\"0x3f8\" size=\"8\"/>"]),
        pd(
            "b",
            "",
            &[
                "<ioport id=\"0\" addr=\"0x3fc\" size=\"4\"/>",
                "<ioport id=\"0\" addr=\"0x60\" size=\"1\"/>",
                "<ioport id=\"1\" addr=\"0xfffe\" size=\"4\"/>",
            ]
        )
    ));
    assert_diags(
        &xml,
        &[
            "system.xml:8:9: error: I/O ports [0x3fc..0x400) of protection domain 'b' overlap the I/O ports [0x3f8..0x400) of 'a' at 4:9; expected disjoint I/O port ranges across the whole system",
            "system.xml:9:17: error: ioport id 0 is already used in protection domain 'b' by the ioport at 8:9; expected ioport ids unique within a protection domain",
            "system.xml:10:38: error: ioport range [0xfffe..0x10002) runs past the last I/O port 0xffff; expected addr + size <= 0x10000",
        ],
    );
}

#[test]
fn program_images_missing_or_not_elf() {
    let image = |name: &str, path: &str| {
        format!(
            "\n    <protection_domain name=\"{name}\">\n        <program_image path=\"{path}\"/>\n    </protection_domain>"
        )
    };
    let dir = common::fixtures().display().to_string();
    let xml = sys(&format!(
        "{}{}{}{}\n    <protection_domain name=\"none\"/>",
        image("a", "missing.elf"),
        image("b", "text.elf"),
        image("c", "elf32.elf"),
        image("d", "dyn.elf"),
    ));
    let expected_elf = "a statically linked, non-PIE x86_64 ELF64 executable (ELF type EXEC)";
    assert_diags(
        &xml,
        &[
            &format!(
                "system.xml:3:24: error: program image 'missing.elf' of protection domain 'a' was not found (searched: {dir}); expected the path of an existing ELF file, relative to one of the search directories"
            ),
            &format!(
                "system.xml:6:24: error: program image '{dir}/text.elf' is not an ELF file (it does not start with the ELF magic bytes 7f 45 4c 46); expected {expected_elf}"
            ),
            &format!(
                "system.xml:9:24: error: program image '{dir}/elf32.elf' is a 32-bit ELF file; expected {expected_elf}"
            ),
            &format!(
                "system.xml:12:24: error: program image '{dir}/dyn.elf' is a position-independent executable or shared object (ELF type DYN); expected {expected_elf}"
            ),
            "system.xml:14:5: error: protection domain 'none' has no program_image; expected exactly one <program_image path=\"...\"/> per protection domain",
        ],
    );
}

#[test]
fn program_images_that_cannot_be_placed_or_read() {
    let dir = common::fixtures().display().to_string();
    let xml = sys(r#"
    <protection_domain name="high">
        <program_image path="high.elf"/>
    </protection_domain>
    <protection_domain name="cut">
        <program_image path="truncated.elf"/>
    </protection_domain>"#);
    assert_diags(
        &xml,
        &[
            // The first segment that collides (the text page) is reported.
            "system.xml:3:24: error: program image 'high.elf' has a loadable segment [0x7fffffd000..0x7fffffe000) (r-x) that overlaps the stack guard page [0x7fffffd000..0x7fffffe000) of protection domain 'high'; expected segments outside the reserved areas (stack [0x7fffffe000..0x8000000000), stack guard page [0x7fffffd000..0x7fffffe000), IPC buffer [0x10000000000..0x10000001000), recovery page [0x10000001000..0x10000002000))",
            &format!(
                "system.xml:6:24: error: program image '{dir}/truncated.elf' is truncated or malformed: its section headers lie outside the file; expected a statically linked, non-PIE x86_64 ELF64 executable (ELF type EXEC)"
            ),
        ],
    );
}

#[test]
fn reserved_pd_name() {
    assert_diags(
        &sys(&pd("monitor", "", &[])),
        &[
            "system.xml:2:24: error: the protection domain name 'monitor' is reserved for the monitor; expected another name",
        ],
    );
}

#[test]
fn setvar_symbols_missing_or_not_word_sized() {
    let xml = sys(&format!(
        "\n    <memory_region name=\"r\" size=\"0x1000\"/>{}{}",
        pd(
            "a",
            "",
            &[
                "<map mr=\"r\" vaddr=\"0x1000000\" setvar_vaddr=\"nosuch\"/>",
                "<map mr=\"r\" vaddr=\"0x2000000\" setvar_vaddr=\"small_var\"/>",
                "<setvar symbol=\"missing\" region_paddr=\"r\"/>",
                "<setvar symbol=\"small_var\" region_paddr=\"r\"/>",
                "<setvar symbol=\"data_word\" region_paddr=\"r\"/>",
                "<setvar symbol=\"data_word\" region_paddr=\"r\"/>",
            ]
        ),
        "\n    <protection_domain name=\"s\">\n        <program_image path=\"stripped.elf\"/>\n        <setvar symbol=\"dev_paddr\" region_paddr=\"r\"/>\n    </protection_domain>"
    ));
    assert_diags(
        &xml,
        &[
            "system.xml:5:39: error: setvar symbol 'nosuch' is not defined in program image 'pd.elf'; expected a word-sized (8-byte) global variable named 'nosuch' in the program",
            "system.xml:6:39: error: setvar symbol 'small_var' in program image 'pd.elf' is 1 bytes, not word-sized; expected an 8-byte variable (for example uintptr_t or u64)",
            "system.xml:7:17: error: setvar symbol 'missing' is not defined in program image 'pd.elf'; expected a word-sized (8-byte) global variable named 'missing' in the program",
            "system.xml:8:17: error: setvar symbol 'small_var' is already set at 6:39 in protection domain 'a'; expected each symbol set at most once per protection domain",
            "system.xml:10:17: error: setvar symbol 'data_word' is already set at 9:17 in protection domain 'a'; expected each symbol set at most once per protection domain",
            "system.xml:14:17: error: setvar symbol 'dev_paddr' is not defined in program image 'stripped.elf' (it has no symbol table; was it stripped?); expected a word-sized (8-byte) global variable named 'dev_paddr' in the program",
        ],
    );
}

#[test]
fn setvar_region_paddr_word_size_is_checked_too() {
    let xml = sys(&format!(
        "\n    <memory_region name=\"r\" size=\"0x1000\"/>{}",
        pd(
            "a",
            "",
            &[
                "<map mr=\"r\" vaddr=\"0x1000000\"/>",
                "<setvar symbol=\"small_var\" region_paddr=\"r\"/>",
                "<setvar symbol=\"shared_vaddr\" region_paddr=\"nowhere\"/>",
            ]
        )
    ));
    assert_diags(
        &xml,
        &[
            "system.xml:6:17: error: setvar symbol 'small_var' in program image 'pd.elf' is 1 bytes, not word-sized; expected an 8-byte variable (for example uintptr_t or u64)",
            "system.xml:7:39: error: unknown memory region 'nowhere'; expected the name of a <memory_region> (declared: r)",
        ],
    );
}

#[test]
fn mcs_only_features() {
    let xml = sys(&format!(
        "{}{}",
        pd("a", " passive=\"true\"", &[]),
        pd("b", " budget=\"3000\" period=\"2000\"", &[])
    ));
    assert_diags(
        &xml,
        &[
            "system.xml:2:33: error: passive protection domains need an MCS kernel (they run on their callers' scheduling contexts), and seL4 5.0.0 here is built without MCS; expected passive=\"false\" or no passive attribute",
            "system.xml:5:33: error: budget (3000 us) is larger than period (2000 us); expected budget less than or equal to period",
        ],
    );
}

#[test]
fn unsupported_microkit_features() {
    let xml = sys(&format!(
        "{}\n    <virtual_machine name=\"vm\"/>",
        pd(
            "a",
            " cpu=\"1\" smc=\"true\"",
            &[
                "<protection_domain name=\"child\" id=\"0\"><program_image path=\"pd.elf\"/></protection_domain>",
                "<virtual_machine name=\"vm\"/>",
            ]
        )
    ));
    assert_diags(
        &xml,
        &[
            "system.xml:2:33: error: cpu 1 is not available: this builder boots seL4 on a single core; expected cpu=\"0\" or no cpu attribute",
            "system.xml:2:41: error: smc (ARM secure monitor call forwarding) does not exist on x86_64; expected smc=\"false\" or no smc attribute",
            "system.xml:4:9: error: child protection_domain is not supported by this builder; expected every <protection_domain> directly inside <system>",
            "system.xml:5:9: error: virtual_machine is not supported by this builder (the seL4 5.0.0 kernel here is not built as a hypervisor); expected no <virtual_machine> elements",
            "system.xml:7:5: error: virtual_machine is not supported by this builder (the seL4 5.0.0 kernel here is not built as a hypervisor); expected no <virtual_machine> elements",
        ],
    );
}

#[test]
fn unknown_memory_region_in_map() {
    let xml = sys(&format!(
        "\n    <memory_region name=\"r\" size=\"0x1000\"/>{}",
        pd(
            "a",
            "",
            &[
                "<map mr=\"r\" vaddr=\"0x1000000\"/>",
                "<map mr=\"q\" vaddr=\"0x2000000\" setvar_vaddr=\"shared_vaddr\"/>",
            ]
        )
    ));
    assert_diags(
        &xml,
        &[
            "system.xml:6:14: error: unknown memory region 'q'; expected the name of a <memory_region> (declared: r)",
        ],
    );
}

#[test]
fn bad_numbers_perms_and_booleans() {
    let xml = sys(&format!(
        "\n    <memory_region name=\"r\" size=\"0x1g00\"/>\n    <memory_region name=\"s\" size=\"99999999999999999999\"/>{}",
        pd(
            "a",
            " priority=\"-1\"",
            &[
                "<map mr=\"s\" vaddr=\"0x\"/>",
                "<map mr=\"s\" vaddr=\"0x1000000\" perms=\"rwz\"/>",
                "<map mr=\"s\" vaddr=\"0x2000000\" perms=\"w\"/>",
                "<map mr=\"s\" vaddr=\"0x3000000\" perms=\"rr\"/>",
                "<map mr=\"s\" vaddr=\"0x4000000\" perms=\"\"/>",
                "<map mr=\"s\" vaddr=\"0x5000000\" cached=\"yes\"/>",
            ]
        )
    ));
    let number = "expected a decimal number or a 0x-prefixed hexadecimal number";
    let perms = "expected a non-empty combination of 'r', 'w' and 'x' (not 'w' alone)";
    assert_diags(
        &xml,
        &[
            &format!(
                "system.xml:2:29: error: size=\"0x1g00\" on <memory_region> is not a valid number (not a hexadecimal digit); {number}"
            ),
            &format!(
                "system.xml:3:29: error: size=\"99999999999999999999\" on <memory_region> is not a valid number (does not fit in 64 bits); {number}"
            ),
            &format!(
                "system.xml:4:33: error: priority=\"-1\" on <protection_domain> is not a valid number (not a decimal digit); {number}"
            ),
            &format!(
                "system.xml:6:21: error: vaddr=\"0x\" on <map> is not a valid number (no digits); {number}"
            ),
            &format!(
                "system.xml:7:39: error: perms=\"rwz\" is not valid: 'z' is not a permission; {perms}"
            ),
            &format!(
                "system.xml:8:39: error: perms=\"w\" is not valid: write-only mappings are not possible; {perms}"
            ),
            &format!(
                "system.xml:9:39: error: perms=\"rr\" is not valid: 'r' appears twice; {perms}"
            ),
            &format!(
                "system.xml:10:39: error: perms=\"\" is not valid: no permission given; {perms}"
            ),
            "system.xml:11:39: error: cached=\"yes\" on <map> is not a boolean; expected cached=\"true\" or cached=\"false\"",
        ],
    );
}

#[test]
fn priority_and_stack_size_bounds() {
    let xml = sys(&format!(
        "{}{}{}",
        pd("a", " priority=\"255\"", &[]),
        pd("b", " stack_size=\"0x1800\"", &[]),
        pd("c", " stack_size=\"0x2000000\"", &[])
    ));
    assert_diags(
        &xml,
        &[
            "system.xml:2:33: error: priority 255 on <protection_domain> is out of range; expected priority between 0 and 254",
            "system.xml:5:33: error: stack_size 0x1800 is not a multiple of the page size; expected a multiple of 0x1000",
            "system.xml:8:33: error: stack_size 0x2000000 on <protection_domain> is out of range; expected stack_size between 0x1000 and 0x1000000",
        ],
    );
}

#[test]
fn malformed_xml_wrong_root_and_stray_text() {
    assert_diags(
        "<system>\n    <protection_domain name=\"a\">\n</system>\n",
        &[
            "system.xml:3:1: error: malformed XML: expected 'protection_domain' tag, not 'system'; expected a well-formed XML document",
        ],
    );
    assert_diags(
        "<sys/>\n",
        &[
            "system.xml:1:1: error: the root element is <sys>; expected <system> as the root element",
        ],
    );
    assert_diags(
        &sys(&format!("{}\n    hello", pd("a", "", &[]))),
        &[
            "system.xml:5:5: error: unexpected text 'hello' inside <system>; expected only elements and comments",
        ],
    );
}

#[test]
fn second_program_image() {
    let xml = sys(&pd("a", "", &["<program_image path=\"pd.elf\"/>"]));
    assert_diags(
        &xml,
        &[
            "system.xml:4:9: error: protection domain 'a' has a second program_image; expected exactly one <program_image> per protection domain",
        ],
    );
}
