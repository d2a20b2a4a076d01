//! The descriptors of QEMU 7.2's USB devices at full speed, as the
//! devices send them (read from hw/usb/dev-hid.c, dev-storage.c,
//! dev-network.c and desc.c's layout: configuration, then per interface
//! the interface, its class descriptors, its endpoints). For host tests of
//! the hub and the class drivers, and as the base of malformed variants.

/// usb-kbd: 0627:0001, USB 1.0, endpoint 0 of 8 bytes.
pub const KBD_DEVICE: [u8; 18] = [
    18, 1, 0x00, 0x01, 0, 0, 0, 8, 0x27, 0x06, 0x01, 0x00, 0, 0, 1, 4, 11, 1,
];

/// usb-kbd's configuration 1: interface 0 is HID boot keyboard (3/1/1)
/// with interrupt IN 0x81, 8 bytes, every 10 ms.
pub const KBD_CONFIG: [u8; 34] = [
    9, 2, 34, 0, 1, 1, 8, 0xa0, 50, //
    9, 4, 0, 0, 1, 3, 1, 1, 0, //
    9, 0x21, 0x11, 0x01, 0, 1, 0x22, 0x3f, 0, //
    7, 5, 0x81, 3, 8, 0, 10,
];

/// usb-storage: 46f4:0001, USB 2.0, endpoint 0 of 8 bytes.
pub const STORAGE_DEVICE: [u8; 18] = [
    18, 1, 0x00, 0x02, 0, 0, 0, 8, 0xf4, 0x46, 0x01, 0x00, 0, 0, 1, 2, 3, 1,
];

/// usb-storage's configuration 1: interface 0 is mass storage, SCSI,
/// Bulk-Only (8/6/0x50), bulk IN 0x81 and OUT 0x02 of 64 bytes.
pub const STORAGE_CONFIG: [u8; 32] = [
    9, 2, 32, 0, 1, 1, 4, 0xc0, 0, //
    9, 4, 0, 0, 2, 8, 6, 0x50, 0, //
    7, 5, 0x81, 2, 64, 0, 0, //
    7, 5, 0x02, 2, 64, 0, 0,
];

/// usb-net: 0525:a4a2, device class 2 (communications), endpoint 0 of 64
/// bytes, two configurations.
pub const NET_DEVICE: [u8; 18] = [
    18, 1, 0x00, 0x02, 2, 0, 0, 64, 0x25, 0x05, 0xa2, 0xa4, 0, 0, 1, 2, 10, 2,
];

/// usb-net's first configuration (index 0): value 2, RNDIS.
pub const NET_CONFIG_RNDIS: [u8; 67] = [
    9, 2, 67, 0, 2, 2, 9, 0xc0, 0x32, //
    9, 4, 0, 0, 1, 2, 2, 0xff, 6, //
    5, 0x24, 0, 0x10, 0x01, //
    5, 0x24, 1, 0, 1, //
    4, 0x24, 2, 0, //
    5, 0x24, 6, 0, 1, //
    7, 5, 0x81, 3, 16, 0, 32, //
    9, 4, 1, 0, 2, 10, 0, 0, 4, //
    7, 5, 0x82, 2, 64, 0, 0, //
    7, 5, 0x02, 2, 64, 0, 0,
];

/// usb-net's second configuration (index 1): value 1, CDC-ECM. Interface
/// 0 is the control interface (2/6/0) with the Ethernet functional
/// descriptor (MAC in string 3) and interrupt IN 0x81; interface 1's
/// alternate 1 has the data endpoints, bulk IN 0x82 and OUT 0x02.
pub const NET_CONFIG_CDC: [u8; 80] = [
    9, 2, 80, 0, 2, 1, 7, 0xc0, 0x32, //
    9, 4, 0, 0, 1, 2, 6, 0, 5, //
    5, 0x24, 0, 0x10, 0x01, //
    5, 0x24, 6, 0, 1, //
    13, 0x24, 0x0f, 3, 0, 0, 0, 0, 0xea, 0x05, 0, 0, 0, //
    7, 5, 0x81, 3, 16, 0, 32, //
    9, 4, 1, 0, 0, 10, 0, 0, 0, //
    9, 4, 1, 1, 2, 10, 0, 0, 4, //
    7, 5, 0x82, 2, 64, 0, 0, //
    7, 5, 0x02, 2, 64, 0, 0,
];

/// String descriptor 3 of usb-net: the MAC address "400102030405".
pub const NET_MAC_STRING: [u8; 26] = [
    26, 3, b'4', 0, b'0', 0, b'0', 0, b'1', 0, b'0', 0, b'2', 0, b'0', 0, b'3', 0, b'0', 0, b'4',
    0, b'0', 0, b'5', 0,
];
