//! Hostile input (issue 13): systems with 100,000 elements load (the
//! position computation was quadratic: 20,000 maps took 48 s), malformed
//! XML is reported where it is malformed, sizes no x86_64 machine can
//! back are refused before boot, and namespaced elements are not read as
//! if they had no namespace.

mod common;

use common::{assert_diags, assert_loads, load, sys};

/// One PD mapping every region `r{i}` of 4 KiB at 4 KiB steps from 1 GiB,
/// each map with a setvar `s{i}` if `setvars`.
fn many_maps(n: usize, setvars: bool) -> String {
    let mut body = String::new();
    for i in 0..n {
        body.push_str(&format!("\n<memory_region name=\"r{i}\" size=\"0x1000\"/>"));
    }
    body.push_str("\n<protection_domain name=\"a\">\n<program_image path=\"pd.elf\"/>");
    for i in 0..n {
        let setvar = if setvars {
            format!(" setvar_vaddr=\"s{i}\"")
        } else {
            String::new()
        };
        body.push_str(&format!(
            "\n<map mr=\"r{i}\" vaddr=\"{:#x}\"{setvar}/>",
            0x4000_0000 + i * 0x1000
        ));
    }
    body.push_str("\n</protection_domain>");
    sys(&body)
}

#[test]
fn a_hundred_thousand_maps_load() {
    let n = 100_000;
    let xml = many_maps(n, false);
    let loaded = assert_loads(&xml);
    assert_eq!(loaded.system.memory_regions.len(), n);
    assert_eq!(loaded.system.protection_domains[0].maps.len(), n);
    assert!(loaded.warnings.is_empty());
}

#[test]
fn twenty_thousand_mistakes_are_each_located() {
    // Every map's setvar names a symbol the image lacks, and the last
    // map overlaps the first: one diagnostic each, at its own place.
    let n = 20_000;
    let xml = many_maps(n, true).replace(
        &format!(
            "vaddr=\"{:#x}\" setvar_vaddr=\"s{}\"",
            0x4000_0000 + (n - 1) * 0x1000,
            n - 1
        ),
        &format!("vaddr=\"{:#x}\" setvar_vaddr=\"s{}\"", 0x4000_0000, n - 1),
    );
    let diags = load(&xml).unwrap_err();
    assert_eq!(diags.len(), n + 1);
    let last_map_line = 2 + n + 2 + n - 1;
    assert_eq!(
        diags[0].to_string(),
        format!(
            "system.xml:{}:33: error: setvar symbol 's0' is not defined in program image 'pd.elf'; expected a word-sized (8-byte) global variable named 's0' in the program",
            n + 4
        )
    );
    assert_eq!(
        diags[n - 1].to_string(),
        format!(
            "system.xml:{last_map_line}:1: error: map of 'r{}' [0x40000000..0x40001000) overlaps the map of 'r0' [0x40000000..0x40001000) at {}:1 in protection domain 'a'; expected the maps of one protection domain at disjoint virtual ranges",
            n - 1,
            n + 4
        )
    );
}

#[test]
fn one_line_documents_with_wide_characters_are_located() {
    // 20,000 regions on one line after a comment of multi-byte
    // characters: columns count characters, and stay cheap to compute.
    let n = 20_000;
    let mut xml = String::from("<system><!-- ünïcödé ✓ -->");
    for i in 0..n {
        xml.push_str(&format!("<memory_region name=\"r{i}\" size=\"0x1000\"/>"));
    }
    xml.push_str("<bogus/></system>\n");
    let diags = load(&xml).unwrap_err();
    let col = xml[..xml.find("<bogus").unwrap()].chars().count() + 1;
    assert_eq!(
        diags
            .iter()
            .filter(|d| d.is_error())
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        [format!(
            "system.xml:1:{col}: error: unknown element <bogus> inside <system>; expected one of: protection_domain, memory_region, channel"
        )]
    );
    assert_eq!(diags.len(), n + 1, "one unused-region warning each");
    // The warnings point at the `name` attributes: after 26 characters
    // (not bytes) of <system> and the comment, then 40 per region.
    assert_eq!((diags[0].pos.col, diags[1].pos.col), (42, 82));
}

#[test]
fn malformed_xml_is_placed_where_it_breaks() {
    // The file ends inside an element: the end of the file.
    assert_diags(
        "<system>\n  <memory_region name=\"a\" size=\"0x1000\"\n",
        &[
            "system.xml:3:1: error: malformed XML: unexpected end of stream (the file ends inside markup); expected a well-formed XML document",
        ],
    );
    // An element never closed: where it starts.
    assert_diags(
        "<system>\n  <protection_domain name=\"a\">\n    <map mr=\"x\" vaddr=\"0\"/>\n",
        &[
            "system.xml:2:3: error: malformed XML: <protection_domain> is opened here and never closed; expected a well-formed XML document",
        ],
    );
    assert_diags(
        "<!-- <fake> -->\n<system a='>'>\n  <x/><![CDATA[<y>]]>\n",
        &[
            "system.xml:2:1: error: malformed XML: <system> is opened here and never closed; expected a well-formed XML document",
        ],
    );
    // A DOCTYPE: its line.
    assert_diags(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE system>\n<system/>\n",
        &[
            "system.xml:2:1: error: malformed XML: a DOCTYPE declaration (DTDs are not part of the system description format); expected a well-formed XML document",
        ],
    );
    // No root element at all: the end of the file.
    assert_diags(
        "<?xml version=\"1.0\"?>\n<!-- nothing -->\n",
        &[
            "system.xml:3:1: error: malformed XML: the document ends without a root element; expected a well-formed XML document",
        ],
    );
    assert_diags(
        "",
        &[
            "system.xml:1:1: error: malformed XML: the document ends without a root element; expected a well-formed XML document",
        ],
    );
}

#[test]
fn byte_order_mark_does_not_shift_columns() {
    assert_diags(
        "\u{feff}<system x=\"1\"/>\n",
        &[
            "system.xml:1:9: error: unknown attribute 'x' on <system>; expected <system> without attributes",
        ],
    );
    assert_diags(
        "\u{feff}<system a='1' a='2'/>\n",
        &[
            "system.xml:1:15: error: malformed XML: attribute 'a' is already defined; expected a well-formed XML document",
        ],
    );
}

#[test]
fn namespaced_elements_and_attributes_are_refused() {
    let pd = "\n    <protection_domain name=\"a\">\n        <program_image path=\"pd.elf\"/>\n        <map mr=\"r\" vaddr=\"0x1000000\"/>\n    </protection_domain>";
    assert_diags(
        &sys(&format!(
            "\n    <a:memory_region xmlns:a=\"urn:x\" name=\"r\" size=\"0x1000\"/>{pd}"
        )),
        &[
            "system.xml:2:5: error: element <a:memory_region> inside <system> is in an XML namespace, which the system description format does not use; expected one of: protection_domain, memory_region, channel, without a namespace prefix or xmlns",
            "system.xml:5:14: error: unknown memory region 'r'; expected the name of a <memory_region> (none are declared)",
        ],
    );
    assert_diags(
        &sys(&format!(
            "\n    <memory_region xmlns:a=\"urn:x\" a:name=\"r\" size=\"0x1000\"/>{pd}"
        )),
        // The region is broken, so the map naming it is dropped quietly.
        &[
            "system.xml:2:36: error: attribute 'a:name' on <memory_region> is in an XML namespace, which the system description format does not use; expected attributes without a namespace prefix",
        ],
    );
    assert_diags(
        "<system xmlns=\"urn:x\"/>\n",
        &[
            "system.xml:1:1: error: the root element is <system xmlns=\"urn:x\">; expected <system> as the root element",
        ],
    );
}

#[test]
fn sizes_no_machine_can_back_are_refused() {
    let region = |attrs: &str| {
        sys(&format!(
            "\n    <memory_region name=\"big\" {attrs}/>\n    <protection_domain name=\"a\">\n        <program_image path=\"pd.elf\"/>\n        <map mr=\"big\" vaddr=\"0x200000000000\"/>\n    </protection_domain>"
        ))
    };
    // 64 TiB, mapped (it fits the user address space).
    assert_diags(
        &region("size=\"0x400000000000\""),
        &[
            "system.xml:2:31: error: memory region of 0x400000000000 bytes (64 TiB) is larger than all the RAM seL4 5.0.0 on x86_64 can hand out (0x7f80000000 bytes (510 GiB), the kernel's physical memory window), on any machine; expected a size of at most 0x7f80000000",
        ],
    );
    assert_diags(
        "<system>\n    <memory_region name=\"huge\" size=\"0xfffffffffffff000\"/>\n</system>\n",
        &[
            "system.xml:2:32: error: memory region of 0xfffffffffffff000 bytes (about 15 EiB) is larger than all the RAM seL4 5.0.0 on x86_64 can hand out (0x7f80000000 bytes (510 GiB), the kernel's physical memory window), on any machine; expected a size of at most 0x7f80000000",
        ],
    );
    assert_diags(
        &region("size=\"0x400000\" phys_addr=\"0x7fffffe00000\" page_size=\"0x200000\""),
        &[
            "system.xml:2:47: error: device region [0x7fffffe00000 + 0x400000) ends above 0x800000000000, the highest physical address seL4 5.0.0 on x86_64 gives out as device memory; expected phys_addr + size <= 0x800000000000",
        ],
    );
    // Each fits, together they do not.
    let xml = sys(
        "\n    <memory_region name=\"a\" size=\"0x4000000000\"/>\n    <memory_region name=\"b\" size=\"0x4000000000\"/>",
    );
    assert_diags(
        &xml,
        &[
            "system.xml:2:20: warning: memory region 'a' is not mapped by any protection domain; expected a <map mr=\"a\" .../> in some protection domain, or no such region",
            "system.xml:3:5: error: with memory region 'b' the regions without phys_addr need 0x8000000000 bytes (512 GiB) of RAM, more than seL4 5.0.0 on x86_64 can hand out (0x7f80000000 bytes (510 GiB)) on any machine; expected at most 0x7f80000000 bytes of memory regions without phys_addr in all",
            "system.xml:3:20: warning: memory region 'b' is not mapped by any protection domain; expected a <map mr=\"b\" .../> in some protection domain, or no such region",
        ],
    );
}

#[test]
fn io_port_range_end_is_printed_exactly() {
    assert_diags(
        &sys(
            "\n    <protection_domain name=\"a\">\n        <program_image path=\"pd.elf\"/>\n        <ioport id=\"0\" addr=\"0xffffffffffffffff\" size=\"2\"/>\n    </protection_domain>",
        ),
        &[
            "system.xml:4:50: error: ioport range [0xffffffffffffffff..0x10000000000000001) runs past the last I/O port 0xffff; expected addr + size <= 0x10000",
        ],
    );
}

#[test]
fn deep_nesting_is_survived() {
    let depth = 100_000;
    let xml = sys(&format!(
        "\n    <protection_domain name=\"a\">\n        <program_image path=\"pd.elf\"/>{}{}\n    </protection_domain>",
        "<map>".repeat(depth),
        "</map>".repeat(depth)
    ));
    let diags = load(&xml).unwrap_err();
    assert!(
        diags[0]
            .to_string()
            .starts_with("system.xml:3:39: error: <map> is missing the required attribute 'mr'"),
        "{}",
        diags[0]
    );
}
