// Tests of the virtio-pci modern transport on the generic PCI layer: what a driver finds in configuration
// space (IDs, the virtio capabilities), the common configuration registers, notifications, ISR and INTx,
// MSI-X vectors, and the VIRTIO_PCI_CAP_PCI_CFG window — driven through the host bridge's ports and the
// MMIO window, as Linux's virtio_pci_modern driver reaches them.
import Devices
import GuestMemory
import Synchronization
import Testing
@testable import Virtio

typealias C = VirtioPCITransport.Common

final class PCIRig {
    static let window = PCIMemoryRange(base: 0xE000_0000, length: 0x1000_0000)!
    let memory: GuestMemory
    let recorder = Recorder()
    final class Wires: Sendable {
        let msis = Mutex<[(Int, MSIMessage)]>([])
        let intx = Mutex<[Bool]>([])
    }
    let wires = Wires()
    let device: VirtioDevice<VirtioConsole>
    let transport: VirtioPCITransport
    let bridge: PCIHostBridge
    let mmio: PCIMemoryWindow
    let slot: UInt8 = 1

    init() throws {
        memory = try testMemory()
        device = VirtioDevice(model: VirtioConsole(ports: [.init(name: nil, output: recorder.output)], size: (80, 25)),
                              memory: memory, log: recorder.log)
        let wires = self.wires
        transport = try VirtioPCITransport(device: device, interrupts: PCIInterruptWiring(
            msi: { v, m in wires.msis.withLock { $0.append((v, m)) } }, intx: { l in wires.intx.withLock { $0.append(l) } }))
        bridge = PCIHostBridge(window: Self.window)
        try bridge.attach(transport, slot: slot)
        try bridge.assignBARs()
        mmio = bridge.memoryWindow()
    }

    // Configuration mechanism #1.
    func config(_ offset: Int, size: Int = 4) -> UInt32 {
        bridge.write(offset: 0, size: 4, value: UInt64(0x8000_0000 | UInt32(slot) << 11 | UInt32(offset & 0xFC)))
        return UInt32(truncatingIfNeeded: bridge.read(offset: 4 + UInt64(offset & 3), size: size))
    }
    func setConfig(_ offset: Int, size: Int = 4, _ value: UInt32) {
        bridge.write(offset: 0, size: 4, value: UInt64(0x8000_0000 | UInt32(slot) << 11 | UInt32(offset & 0xFC)))
        bridge.write(offset: 4 + UInt64(offset & 3), size: size, value: UInt64(value))
    }

    /// Virtio capabilities by cfg_type: (bar, offset, length, config-space position).
    func virtioCapabilities() -> [UInt8: (bar: UInt8, offset: UInt32, length: UInt32, at: Int)] {
        var result: [UInt8: (UInt8, UInt32, UInt32, Int)] = [:]
        var at = Int(config(0x34, size: 1))
        while at != 0 {
            if config(at, size: 1) == 0x09 {
                result[UInt8(config(at + 3, size: 1))] = (UInt8(config(at + 4, size: 1)), config(at + 8), config(at + 12), at)
            }
            at = Int(config(at + 1, size: 1))
        }
        return result
    }

    var bar0: UInt64 { UInt64(config(0x10) & ~0xF) }
    func common(_ offset: UInt64, size: Int) -> UInt64 { mmio.read(offset: bar0 + offset - mmio.base, size: size) }
    func setCommon(_ offset: UInt64, size: Int, _ value: UInt64) { mmio.write(offset: bar0 + offset - mmio.base, size: size, value: value) }

    /// Enables memory decoding and brings the device up with queue 1 at `ring`.
    func bringUp(_ ring: RingBuilder) {
        setConfig(0x04, size: 2, 0x6) // memory space, bus master
        setCommon(C.deviceStatus, size: 1, 0)
        setCommon(C.deviceStatus, size: 1, 3)
        setCommon(C.driverFeatureSelect, size: 4, 1); setCommon(C.driverFeature, size: 4, 1)
        setCommon(C.deviceStatus, size: 1, 0xB)
        setCommon(C.queueSelect, size: 2, 1)
        setCommon(C.queueSize, size: 2, UInt64(ring.size))
        setCommon(C.queueDesc, size: 4, ring.table.rawValue); setCommon(C.queueDesc + 4, size: 4, 0)
        setCommon(C.queueDriver, size: 8, ring.available.rawValue)
        setCommon(C.queueDevice, size: 8, ring.used.rawValue)
        setCommon(C.queueEnable, size: 2, 1)
        setCommon(C.deviceStatus, size: 1, 0xF)
    }

    func kick(_ queue: Int) {
        mmio.write(offset: VirtioPCITransport.notifyAddress(barBase: bar0, queue: queue) - mmio.base, size: 2, value: UInt64(queue))
    }
}

@Suite struct VirtioPCITransportTests {
    @Test func aDriverFindsAModernConsoleAndItsCapabilities() throws {
        let rig = try PCIRig()
        #expect(rig.config(0x00) == 0x1043_1AF4, "vendor 0x1af4, device 0x1040 + 3")
        #expect(rig.config(0x08) & 0xFF == 1, "revision 1: not transitional")
        #expect(rig.config(0x08) >> 8 == 0x07_8000, "class: other communication controller")
        #expect(rig.config(0x2C) == 0x0040_1AF4, "subsystem")
        #expect(rig.config(0x3D, size: 1) == 1, "INTA#")
        let caps = rig.virtioCapabilities()
        #expect(caps[1]?.bar == 0 && caps[1]?.offset == 0x0000 && caps[1]?.length == 0x40)
        #expect(caps[2]?.offset == 0x3000 && caps[2]?.length == 8)
        #expect(caps[3]?.offset == 0x1000)
        #expect(caps[4]?.offset == 0x2000 && caps[4]?.length == 12)
        #expect(caps[5] != nil, "VIRTIO_PCI_CAP_PCI_CFG is mandatory")
        if let notify = caps[2] { #expect(rig.config(notify.at + 16) == 4, "notify_off_multiplier") }
        #expect(rig.config(0x10) & 0xF == 0 && rig.bar0 >= PCIRig.window.base, "BAR 0: 32-bit memory, placed in the window")
    }

    @Test func commonConfigurationBringsUpAQueueAndTransmits() throws {
        let rig = try PCIRig()
        let ring = RingBuilder(memory: rig.memory, size: 16, base: 0x10000)
        rig.bringUp(ring)
        #expect(rig.common(C.numQueues, size: 2) == 2)
        #expect(rig.common(C.deviceStatus, size: 1) == 0xF)
        rig.setCommon(C.queueSelect, size: 2, 1)
        #expect(rig.common(C.queueSize, size: 2) == 16)
        #expect(rig.common(C.queueEnable, size: 2) == 1)
        #expect(rig.common(C.queueNotifyOff, size: 2) == 1)
        #expect(rig.common(C.queueDriver, size: 8) == ring.available.rawValue)
        #expect(rig.common(C.queueDevice + 4, size: 4) == 0)
        rig.setCommon(C.deviceFeatureSelect, size: 4, 1)
        #expect(rig.common(C.deviceFeature, size: 4) == 1, "VERSION_1")
        try rig.memory.write(bytes: Array("over pci\n".utf8), at: GuestAddress(0x40000))
        try ring.descriptor(0, address: 0x40000, length: 9)
        try ring.publish(0)
        rig.kick(1)
        #expect(rig.recorder.text == "over pci\n")
        #expect(try ring.usedIndex == 1)
    }

    @Test func withoutMSIXTheISRBitAndINTxCarryTheInterrupt() throws {
        let rig = try PCIRig()
        let ring = RingBuilder(memory: rig.memory, size: 16, base: 0x10000)
        rig.bringUp(ring)
        try ring.descriptor(0, address: 0x40000, length: 1)
        try ring.publish(0)
        rig.kick(1)
        #expect(rig.wires.intx.withLock { $0 } == [true])
        #expect(rig.transport.pciFunction.intxLevel)
        #expect(rig.common(VirtioPCITransport.isrOffset, size: 1) == 1, "queue interrupt bit")
        #expect(!rig.transport.pciFunction.intxLevel, "reading ISR deasserts INTx")
        #expect(rig.common(VirtioPCITransport.isrOffset, size: 1) == 0, "and clears it")
    }

    @Test func withMSIXEachQueueSignalsItsVector() throws {
        let rig = try PCIRig()
        let ring = RingBuilder(memory: rig.memory, size: 16, base: 0x10000)
        // MSI-X: program vector 1 (table in BAR 1), enable it in the capability's message control.
        rig.setConfig(0x04, size: 2, 0x6)
        let bar1 = UInt64(rig.config(0x14) & ~0xF)
        rig.mmio.write(offset: bar1 + 16 - rig.mmio.base, size: 4, value: 0xFEE0_0000)
        rig.mmio.write(offset: bar1 + 16 + 8 - rig.mmio.base, size: 4, value: 0x41)
        rig.mmio.write(offset: bar1 + 16 + 12 - rig.mmio.base, size: 4, value: 0) // unmask
        let msix = try #require(rig.transport.pciFunction.msixCapabilityOffset)
        rig.setConfig(msix + 2, size: 2, 0x8000 | rig.config(msix + 2, size: 2))
        rig.bringUp(ring)
        rig.setCommon(C.queueSelect, size: 2, 1)
        rig.setCommon(C.queueMSIXVector, size: 2, 1)
        #expect(rig.common(C.queueMSIXVector, size: 2) == 1)
        rig.setCommon(C.queueMSIXVector, size: 2, 200) // no such vector
        #expect(rig.common(C.queueMSIXVector, size: 2) == 0xFFFF, "refused vectors read back as NO_VECTOR")
        rig.setCommon(C.queueMSIXVector, size: 2, 1)
        try ring.descriptor(0, address: 0x40000, length: 1)
        try ring.publish(0)
        rig.kick(1)
        let sent = rig.wires.msis.withLock { $0 }
        #expect(sent.count == 1 && sent.first?.0 == 1 && sent.first?.1 == MSIMessage(address: 0xFEE0_0000, data: 0x41))
        #expect(rig.wires.intx.withLock { $0 }.isEmpty, "no INTx while MSI-X is on")
    }

    @Test func thePCIConfigurationWindowReachesTheRegisters() throws {
        let rig = try PCIRig()
        let cap = try #require(rig.virtioCapabilities()[5]).at
        rig.setConfig(cap + 4, size: 1, 0)                      // bar 0
        rig.setConfig(cap + 8, 0x12)                            // offset: num_queues
        rig.setConfig(cap + 12, 2)                              // length 2
        #expect(rig.config(cap + 16, size: 2) == 2, "num_queues through pci_cfg_data")
        rig.setConfig(cap + 8, 0x14)
        rig.setConfig(cap + 12, 1)
        rig.setConfig(cap + 16, size: 1, 1)                     // device_status = ACKNOWLEDGE
        #expect(rig.device.status == 1)
    }

    @Test func readOnlyFieldsAndStrayAccessesAreRefusedAndLogged() throws {
        let rig = try PCIRig()
        rig.setConfig(0x04, size: 2, 0x6)
        rig.setCommon(C.numQueues, size: 2, 9)
        #expect(rig.common(C.numQueues, size: 2) == 2)
        rig.setCommon(0x3, size: 1, 1)
        rig.setCommon(C.queueEnable, size: 2, 0)
        rig.mmio.write(offset: rig.bar0 + VirtioPCITransport.notifyOffset + 2 - rig.mmio.base, size: 2, value: 0)
        let log = rig.recorder.logged
        #expect(log.contains("virtio-console: driver wrote 0x9 to num_queues, which is read-only: ignored"))
        #expect(log.contains { $0.contains("at common configuration offset 0x3, which is no field") })
        #expect(log.contains { $0.contains("only 1 may be written") })
        #expect(log.contains { $0.contains("which is no queue's notification address") })
    }

    @Test func aResetReturnsTheVectorsToNoVector() throws {
        let rig = try PCIRig()
        rig.setConfig(0x04, size: 2, 0x6)
        rig.setCommon(C.configMSIXVector, size: 2, 0)
        #expect(rig.common(C.configMSIXVector, size: 2) == 0)
        rig.setCommon(C.deviceStatus, size: 1, 0)
        #expect(rig.common(C.configMSIXVector, size: 2) == 0xFFFF)
    }
}
