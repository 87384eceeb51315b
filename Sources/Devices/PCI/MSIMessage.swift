// MSIMessage: a message-signalled interrupt — the 32-bit write of `data` to `address` that a PCI function
// makes to interrupt a CPU (PCI Local Bus Specification 3.0 §6.8), and the MSI-X table entry that holds one.
//
// On x86 the address falls in 0xFEExxxxx and the local APICs decode it (Intel SDM Vol. 3, §11.11
// "Message Signalled Interrupts"): address bits 19:12 are the destination APIC ID, bit 3 the redirection
// hint, bit 2 the destination mode; data bits 7:0 are the vector, 10:8 the delivery mode, 15 the trigger
// mode. The VMM hands a message to KVM as it stands — KVM_SIGNAL_MSI, or a KVM_SET_GSI_ROUTING entry of
// type KVM_IRQ_ROUTING_MSI behind an irqfd — and KVM's APIC model does the decoding.

/// One message: write `data` to `address`.
public struct MSIMessage: Equatable, Hashable, Sendable, CustomStringConvertible {
    public var address: UInt64
    public var data: UInt32

    public init(address: UInt64, data: UInt32) { self.address = address; self.data = data }

    /// Whether the address is in the x86 interrupt range 0xFEE00000-0xFEEFFFFF.
    public var isX86InterruptAddress: Bool { address >> 20 == 0xFEE }
    /// x86: the destination APIC ID (address bits 19:12).
    public var destinationID: UInt8 { UInt8(truncatingIfNeeded: address >> 12) }
    /// x86: the interrupt vector (data bits 7:0).
    public var vector: UInt8 { UInt8(truncatingIfNeeded: data) }

    public var description: String {
        "MSI 0x\(String(data, radix: 16)) → 0x\(String(address, radix: 16))"
            + (isX86InterruptAddress ? " (APIC \(destinationID), vector \(vector))" : "")
    }
}

/// One 16-byte MSI-X table entry (PCI 3.0 §6.8.2.6-9): message address (low, high), message data,
/// vector control. After reset every entry is masked.
public struct MSIXTableEntry: Equatable, Sendable {
    public var messageAddress: UInt64 = 0
    public var messageData: UInt32 = 0
    /// Bit 0: the vector is masked (the function may not send it; it sets the pending bit instead).
    public var vectorControl: UInt32 = 1

    public init(messageAddress: UInt64 = 0, messageData: UInt32 = 0, vectorControl: UInt32 = 1) {
        self.messageAddress = messageAddress; self.messageData = messageData; self.vectorControl = vectorControl
    }

    public var isMasked: Bool { vectorControl & 1 != 0 }
    public var message: MSIMessage { MSIMessage(address: messageAddress, data: messageData) }
}

/// What became of an interrupt a function signalled.
public enum PCIInterruptDelivery: Equatable, Sendable {
    /// The MSI-X message was sent.
    case delivered(MSIMessage)
    /// The vector (or the whole function) is masked: its pending bit is set and it goes out when unmasked.
    case pending
    /// MSI-X is not enabled: the device should use INTx (virtio: set the ISR bit and assert INTx).
    case msixDisabled
    /// No such vector in the table.
    case noSuchVector
}
