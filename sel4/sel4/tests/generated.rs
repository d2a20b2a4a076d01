//! The generated tables hold the values seL4 5.0.0 has in this project's
//! configuration (x86_64 pc99, one node, no hardware debug API, huge pages on).

use sel4::{Error, consts, label, layout, object_type, sys};

#[test]
fn syscall_numbers() {
    assert_eq!(sys::Call, -1);
    assert_eq!(sys::Recv, -5);
    assert_eq!(sys::NBRecv, -8);
}

#[test]
fn debug_kernel_has_debug_syscalls() {
    // The bindings are tested against the debug flavour (printing on).
    assert_eq!(sys::DebugPutChar, -9);
    assert_eq!(sys::DebugHalt, -10);
}

#[test]
fn generic_labels_skip_disabled_methods() {
    assert_eq!(label::InvalidInvocation, 0);
    assert_eq!(label::UntypedRetype, 1);
    assert_eq!(label::TCBUnbindNotification, 13);
    // SetAffinity (needs >1 node) and the breakpoint calls (need the hardware
    // debug API) are configured out, so the CNode labels follow directly.
    assert_eq!(label::CNodeRevoke, label::TCBUnbindNotification + 1);
    assert_eq!(label::CNodeMint, 18);
}

#[test]
fn arch_labels_continue_after_generic_ones() {
    assert_eq!(label::X86PDPTMap, label::DomainSetSet + 1);
    assert_eq!(label::X86PageMap, 37);
    assert_eq!(label::X86IOPortOut8, 47);
    assert_eq!(label::X86IRQIssueIRQHandlerIOAPIC, 50);
}

#[test]
fn object_types() {
    assert_eq!(object_type::UntypedObject, 0);
    assert_eq!(object_type::TCBObject, 1);
    assert_eq!(object_type::NotificationObject, 3);
    assert_eq!(object_type::X86_PDPTObject, 5);
    // CONFIG_HUGE_PAGE adds the 1 GiB page before the arch object types.
    assert_eq!(object_type::X64_HugePageObject, 7);
    assert_eq!(object_type::X86_4K, 8);
}

#[test]
fn error_codes() {
    assert_eq!(Error::from_code(0), None);
    assert_eq!(Error::from_code(1), Some(Error::InvalidArgument));
    assert_eq!(Error::from_code(10), Some(Error::NotEnoughMemory));
    assert_eq!(Error::from_code(99), Some(Error::Unknown(99)));
}

#[test]
fn constants() {
    assert_eq!(consts::PageBits, 12);
    assert_eq!(consts::MsgMaxLength, 120);
    assert_eq!(consts::MsgMaxExtraCaps, 3);
    assert_eq!(consts::CONFIG_MAX_NUM_BOOTINFO_UNTYPED_CAPS, 230);
}

#[test]
fn bootinfo_layout_is_packed() {
    // seL4_BootInfo is SEL4_PACKED: 5 words, 6 slot regions, a byte, 2 words,
    // a slot region, then the untyped list.
    assert_eq!(layout::SLOT_REGION_SIZE, 16);
    assert_eq!(layout::BI_CNODE_SIZE_BITS, 5 * 8 + 6 * 16);
    assert_eq!(layout::BI_DOMAIN, layout::BI_CNODE_SIZE_BITS + 1);
    assert_eq!(layout::UT_SIZE, 12);
    assert_eq!(
        layout::BI_SIZE,
        layout::BI_UNTYPED_LIST + consts::CONFIG_MAX_NUM_BOOTINFO_UNTYPED_CAPS * layout::UT_SIZE
    );
}
