use super::*;
use crate::fixtures::*;
use crate::kind;
use crate::setup::Setup;

#[test]
fn qemu_devices_parse() {
    let kbd = DeviceDescriptor::parse(&KBD_DEVICE).unwrap();
    assert_eq!((kbd.vendor, kbd.product, kbd.max_packet0), (0x0627, 1, 8));
    let c = Config::parse(&KBD_CONFIG).unwrap();
    assert_eq!((c.value, c.interfaces), (1, 1));
    let i = c.interface(0, 0).unwrap();
    assert_eq!((i.class, i.subclass, i.protocol), (3, 1, 1));
    let eps: std::vec::Vec<_> = c.endpoints(&i).collect();
    assert_eq!(
        eps,
        [Endpoint {
            address: 0x81,
            kind: kind::INTERRUPT,
            max_packet: 8,
            interval: 10
        }]
    );
    // The HID descriptor sits inside the interface, before its endpoint.
    assert!(
        c.within(&i)
            .any(|d| matches!(d, Descriptor::Other { kind: 0x21, bytes } if bytes.len() == 9))
    );

    let c = Config::parse(&STORAGE_CONFIG).unwrap();
    let i = c.interface(0, 0).unwrap();
    assert_eq!((i.class, i.subclass, i.protocol), (8, 6, 0x50));
    assert_eq!(c.endpoint(0x02).unwrap().max_packet, 64);
    assert!(c.endpoint(0x81).unwrap().is_in());

    let d = DeviceDescriptor::parse(&NET_DEVICE).unwrap();
    assert_eq!((d.class, d.configurations), (2, 2));
    let cdc = Config::parse(&NET_CONFIG_CDC).unwrap();
    assert_eq!(cdc.value, 1);
    let data_off = cdc.interface(1, 0).unwrap();
    assert_eq!(cdc.endpoints(&data_off).count(), 0);
    let data_on = cdc.interface(1, 1).unwrap();
    let eps: std::vec::Vec<u8> = cdc.endpoints(&data_on).map(|e| e.address).collect();
    assert_eq!(eps, [0x82, 0x02]);
    let rndis = Config::parse(&NET_CONFIG_RNDIS).unwrap();
    assert_eq!(rndis.value, 2);
    let mut mac = [0; 12];
    assert_eq!(string_ascii(&NET_MAC_STRING, &mut mac), Ok(12));
    assert_eq!(&mac, b"400102030405");
}

fn fails(b: &[u8]) -> DescError {
    Config::parse(b).expect_err("a malformed configuration must be refused")
}

#[test]
fn a_descriptor_of_length_zero_is_refused() {
    let mut b = STORAGE_CONFIG;
    b[18] = 0; // the first endpoint's bLength
    let e = fails(&b);
    assert_eq!((e.offset, e.field, e.value), (18, "bLength", 0));
    assert_eq!(
        e.to_string(),
        "descriptor descriptor at offset 18: bLength is 0 (expected at least 2)"
    );
    let mut d = KBD_DEVICE;
    d[0] = 0;
    assert_eq!(DevicePrefix::parse(&d).unwrap_err().field, "bLength");
}

#[test]
fn a_total_length_past_the_buffer_is_refused() {
    let mut b = KBD_CONFIG;
    b[2] = 200;
    let e = fails(&b);
    assert_eq!((e.field, e.value), ("wTotalLength", 200));
    // Fewer bytes read than the header promises: same refusal.
    assert_eq!(fails(&KBD_CONFIG[..20]).field, "wTotalLength");
    // A descriptor reaching past wTotalLength.
    let mut b = KBD_CONFIG;
    b[2] = 30;
    assert_eq!(fails(&b).field, "bLength");
}

#[test]
fn max_packet_zero_is_refused() {
    let mut b = STORAGE_CONFIG;
    b[22] = 0; // endpoint 0x81's wMaxPacketSize
    let e = fails(&b);
    assert_eq!(
        (e.descriptor, e.field, e.value),
        ("endpoint", "wMaxPacketSize", 0)
    );
    let mut d = STORAGE_DEVICE;
    d[7] = 0;
    let e = DeviceDescriptor::parse(&d).unwrap_err();
    assert_eq!(e.field, "bMaxPacketSize0");
}

#[test]
fn counts_must_match_what_follows() {
    let mut b = STORAGE_CONFIG;
    b[13] = 3; // bNumEndpoints 3 with 2 endpoints
    assert_eq!(fails(&b).field, "bNumEndpoints");
    let mut b = STORAGE_CONFIG;
    b[13] = 1; // one endpoint too many follows
    assert_eq!(fails(&b).field, "bNumEndpoints");
    let mut b = STORAGE_CONFIG;
    b[4] = 2; // bNumInterfaces 2 with 1
    assert_eq!(fails(&b).field, "bNumInterfaces");
    // An endpoint before any interface.
    let mut b = [0u8; 16];
    b[..9].copy_from_slice(&[9, 2, 16, 0, 1, 1, 0, 0x80, 0]);
    b[9..].copy_from_slice(&[7, 5, 0x81, 2, 64, 0, 0]);
    assert_eq!(fails(&b).field, "position");
    // Endpoint number 0 in an endpoint descriptor.
    let mut b = STORAGE_CONFIG;
    b[20] = 0x80;
    assert_eq!(fails(&b).field, "bEndpointAddress");
}

#[test]
fn headers_are_checked_before_their_lengths_are_used() {
    assert_eq!(config_total_length(&KBD_CONFIG[..9]), Ok(34));
    assert_eq!(
        config_total_length(&KBD_CONFIG[..5]).unwrap_err().field,
        "length read"
    );
    let mut b = KBD_CONFIG;
    b[1] = 4;
    assert_eq!(
        config_total_length(&b).unwrap_err().field,
        "bDescriptorType"
    );
    let mut b = KBD_CONFIG;
    b[2] = 4;
    assert_eq!(config_total_length(&b).unwrap_err().field, "wTotalLength");
    assert_eq!(
        DeviceDescriptor::parse(&KBD_DEVICE[..12])
            .unwrap_err()
            .field,
        "length read"
    );
    let mut s = NET_MAC_STRING;
    s[0] = 27;
    assert_eq!(string_ascii(&s, &mut [0; 4]).unwrap_err().field, "bLength");
}

#[test]
fn a_configuration_is_read_header_first_then_whole_if_it_fits() {
    let header = ConfigRead::Header { index: 2 };
    assert_eq!(header.setup(), Setup::get_descriptor(2, 2, 9));
    let Ok(ConfigNext::Read(whole)) = header.next(&KBD_CONFIG[..9], 512) else {
        panic!("the header leads to the whole read");
    };
    assert_eq!(whole, ConfigRead::Whole { index: 2, len: 34 });
    assert_eq!(whole.setup(), Setup::get_descriptor(2, 2, 34));
    assert_eq!(whole.index(), 2);
    let Ok(ConfigNext::Done(c)) = whole.next(&KBD_CONFIG, 512) else {
        panic!("the whole read gives the configuration");
    };
    assert_eq!(c, Config::parse(&KBD_CONFIG).unwrap());

    let too_long = header.next(&KBD_CONFIG[..9], 33).unwrap_err();
    assert_eq!((too_long.field, too_long.value), ("wTotalLength", 34));
    // A device that returns less the second time is refused, not trusted.
    let short = whole.next(&KBD_CONFIG[..20], 512).unwrap_err();
    assert_eq!(short.field, "wTotalLength");
    assert_eq!(
        header.next(&KBD_CONFIG[..5], 512).unwrap_err().field,
        "length read"
    );
}

/// Every truncation and every single-byte corruption of the fixtures is
/// either refused or parses into something whose walk stays in bounds.
#[test]
fn corrupted_configurations_never_panic() {
    for fixture in [
        &KBD_CONFIG[..],
        &STORAGE_CONFIG[..],
        &NET_CONFIG_CDC[..],
        &NET_CONFIG_RNDIS[..],
    ] {
        for cut in 0..fixture.len() {
            let _ = Config::parse(&fixture[..cut]);
        }
        for at in 0..fixture.len() {
            for v in [0u8, 1, 2, 7, 9, 0x7f, 0x80, 0xff] {
                let mut b = fixture.to_vec();
                b[at] = v;
                if let Ok(c) = Config::parse(&b) {
                    for i in c.interfaces() {
                        let _ = c.endpoints(&i).count();
                    }
                    let _ = c.descriptors().count();
                }
            }
        }
    }
}
