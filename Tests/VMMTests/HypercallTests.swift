// Unit tests of the PV hypercall answers the VMM gives on kvm_pvm (Machine+Hypercalls.swift): the MSI
// messages a KVM_HC_SEND_IPI bitmap turns into, per Documentation/virt/kvm/x86/hypercalls.rst.
import Testing
@testable import VMM

struct HypercallTests {
    @Test func sendIPIBitmapNamesAPICIDsFromTheMinimum() {
        // Bits 1 and 3 of the low word, bit 0 of the high word, minimum APIC ID 2: IDs 3, 5 and 66.
        let messages = PVIPIMessage.messages(bitmapLow: 0b1010, bitmapHigh: 1, minimumAPICID: 2, icr: 0x00FB)
        #expect(messages.map(\.apicID) == [3, 5, 66])
        #expect(messages[0].address == 0xFEE0_3000)
        #expect(messages[2].address == 0xFEE4_2000)
        // Vector 0xfb, fixed delivery, level assert.
        #expect(messages.allSatisfy { $0.data == 0x40FB })
    }

    @Test func deliveryModeComesFromTheICR() {
        // NMI delivery mode (0b100 << 8), vector ignored by the LAPIC but carried.
        let messages = PVIPIMessage.messages(bitmapLow: 1, bitmapHigh: 0, minimumAPICID: 0, icr: 0x0400)
        #expect(messages == [PVIPIMessage(apicID: 0, address: 0xFEE0_0000, data: 0x4400)])
    }

    @Test func destinationsBeyondEightBitAPICIDsAreDropped() {
        let messages = PVIPIMessage.messages(bitmapLow: 0b11, bitmapHigh: 0, minimumAPICID: 0xFF, icr: 0x30)
        #expect(messages.map(\.apicID) == [0xFF])
    }

    @Test func emptyBitmapSendsNothing() {
        #expect(PVIPIMessage.messages(bitmapLow: 0, bitmapHigh: 0, minimumAPICID: 0, icr: 0x30).isEmpty)
    }

    @Test func hypercallNumbersMatchTheKVMDocumentation() {
        #expect(KVMHypercall(rawValue: 10) == .sendIPI)
        #expect(KVMHypercall(rawValue: 5) == .kickCPU)
        #expect(KVMHypercall(rawValue: 11) == .schedYield)
        #expect(KVMHypercall.notImplemented == UInt64(bitPattern: -1000))
    }
}
