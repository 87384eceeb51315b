// Tests of the device core through the virtio-mmio transport, driven register by register the way Linux's
// virtio_mmio driver does it (virtio 1.2 §3.1.1, §4.2.3), with the console as the device type.
import GuestMemory
import Testing
@testable import Virtio

typealias M = VirtioMMIOTransport

/// The driver's side of the MMIO register block.
struct MMIODriver {
    let mmio: VirtioMMIOTransport
    func read(_ offset: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: mmio.read(offset: offset, size: 4)) }
    func write(_ offset: UInt64, _ value: UInt32) { mmio.write(offset: offset, size: 4, value: UInt64(value)) }
    var status: UInt32 { read(M.status) }

    /// ACKNOWLEDGE, DRIVER, features, FEATURES_OK; returns whether the device kept FEATURES_OK.
    @discardableResult
    func negotiate(_ features: UInt64) -> Bool {
        write(M.status, 0)
        write(M.status, 1)
        write(M.status, 3)
        write(M.driverFeaturesSel, 0); write(M.driverFeatures, UInt32(truncatingIfNeeded: features))
        write(M.driverFeaturesSel, 1); write(M.driverFeatures, UInt32(truncatingIfNeeded: features >> 32))
        write(M.status, 0xB)
        return status & 8 != 0
    }

    func setUp(queue: UInt32, _ ring: RingBuilder) {
        write(M.queueSel, queue)
        write(M.queueNum, UInt32(ring.size))
        write(M.queueDescLow, UInt32(truncatingIfNeeded: ring.table.rawValue)); write(M.queueDescHigh, UInt32(ring.table.rawValue >> 32))
        write(M.queueDriverLow, UInt32(truncatingIfNeeded: ring.available.rawValue)); write(M.queueDriverHigh, 0)
        write(M.queueDeviceLow, UInt32(truncatingIfNeeded: ring.used.rawValue)); write(M.queueDeviceHigh, 0)
        write(M.queueReady, 1)
    }

    func driverOK() { write(M.status, 0xF) }
}

/// A console on a transport, with 1 MiB of RAM and everything recorded.
struct Rig {
    let memory: GuestMemory
    let recorder = Recorder()
    let control = Recorder()
    let device: VirtioDevice<VirtioConsole>
    let driver: MMIODriver

    init(ports: Int = 1, size: (columns: UInt16, rows: UInt16)? = (80, 25)) throws {
        memory = try testMemory()
        var list = [VirtioConsole.Port(name: nil, output: recorder.output)]
        if ports > 1 { list.append(VirtioConsole.Port(name: VirtioConsole.controlPortName, output: control.output)) }
        device = VirtioDevice(model: VirtioConsole(ports: list, size: size), memory: memory, log: recorder.log)
        driver = MMIODriver(mmio: VirtioMMIOTransport(device: device, interrupt: recorder.interrupt))
    }

    /// A transmit queue at 0x10000 and a receive queue at 0x20000, set up and DRIVER_OK.
    func bringUp(features: UInt64 = VirtioFeature.version1) throws -> (rx: RingBuilder, tx: RingBuilder) {
        let rx = RingBuilder(memory: memory, size: 16, base: 0x20000)
        let tx = RingBuilder(memory: memory, size: 16, base: 0x10000)
        #expect(driver.negotiate(features))
        driver.setUp(queue: 0, rx)
        driver.setUp(queue: 1, tx)
        driver.driverOK()
        #expect(driver.status == 0xF)
        return (rx, tx)
    }

    func send(_ text: String, on ring: RingBuilder, queue: UInt32, at address: UInt64 = 0x40000, descriptor: UInt16 = 0) throws {
        try memory.write(bytes: Array(text.utf8), at: GuestAddress(address))
        try ring.descriptor(descriptor, address: address, length: UInt32(text.utf8.count))
        try ring.publish(descriptor)
        driver.write(M.queueNotify, queue)
    }
}

@Suite struct VirtioMMIOTests {
    @Test func identifiesAsAVersion2ConsoleDevice() throws {
        let rig = try Rig()
        #expect(rig.driver.read(M.magicValue) == 0x7472_6976)
        #expect(rig.driver.read(M.versionRegister) == 2)
        #expect(rig.driver.read(M.deviceIDRegister) == 3)
        rig.driver.write(M.queueSel, 1)
        #expect(rig.driver.read(M.queueNumMax) == 256)
        rig.driver.write(M.queueSel, 2)
        #expect(rig.driver.read(M.queueNumMax) == 0, "a single-port console has two queues")
        rig.driver.write(M.deviceFeaturesSel, 1)
        #expect(rig.driver.read(M.deviceFeatures) == 1, "VERSION_1 is bit 32")
        rig.driver.write(M.deviceFeaturesSel, 0)
        let low = rig.driver.read(M.deviceFeatures)
        #expect(low & 0x3000_0000 == 0x3000_0000, "INDIRECT_DESC and EVENT_IDX")
        #expect(low & 0b111 == 0b101, "F_SIZE and F_EMERG_WRITE; no F_MULTIPORT with one port")
    }

    @Test func transmitsWhatTheDriverQueuesAndInterrupts() throws {
        let rig = try Rig()
        let (_, tx) = try rig.bringUp()
        try rig.send("hello, virtio\n", on: tx, queue: 1)
        #expect(rig.recorder.text == "hello, virtio\n")
        #expect(try tx.usedIndex == 1)
        #expect(try tx.usedElement(0).id == 0)
        #expect(rig.recorder.interrupts.withLock { $0 } == [.usedBuffer(queue: 1)])
        #expect(rig.driver.read(M.interruptStatus) == 1)
        rig.driver.write(M.interruptACK, 1)
        #expect(rig.driver.read(M.interruptStatus) == 0)
        #expect(rig.recorder.logged.isEmpty, "\(rig.recorder.logged)")
    }

    @Test func hostInputWaitsForReceiveBuffers() throws {
        let rig = try Rig()
        let (rx, _) = try rig.bringUp()
        #expect(rig.device.enqueueInput(port: 0, Array("ls\n".utf8)) == 3)
        #expect(rig.device.pendingInputCount(port: 0) == 3)
        try rx.descriptor(0, address: 0x50000, length: 2, flags: VirtqueueLayout.descriptorWrite)
        try rx.descriptor(1, address: 0x50100, length: 64, flags: VirtqueueLayout.descriptorWrite)
        try rx.publish(0)
        try rx.publish(1)
        rig.driver.write(M.queueNotify, 0)
        #expect(try rx.usedIndex == 2)
        #expect(try rx.usedElement(0).length == 2 && rx.usedElement(1).length == 1)
        #expect(try rig.memory.readBytes(at: GuestAddress(0x50000), count: 2) == Array("ls".utf8))
        #expect(try rig.memory.readBytes(at: GuestAddress(0x50100), count: 1) == [0x0A])
        #expect(rig.device.pendingInputCount(port: 0) == 0)
    }

    @Test func hostInputBeyondTheLimitIsRefused() throws {
        let rig = try Rig()
        let accepted = rig.device.enqueueInput(port: 0, [UInt8](repeating: 0x41, count: VirtioConsole.inputLimit + 10))
        #expect(accepted == VirtioConsole.inputLimit)
    }

    @Test func featuresOKIsRefusedWithoutVersion1OrWithUnofferedFeatures() throws {
        let rig = try Rig()
        #expect(!rig.driver.negotiate(0), "a legacy driver is refused")
        #expect(!rig.driver.negotiate(VirtioFeature.version1 | (1 << 40)))
        #expect(rig.driver.negotiate(VirtioFeature.version1 | VirtioConsole.featureSize))
        let log = rig.recorder.logged
        #expect(log.contains { $0.contains("FEATURES_OK refused: the driver did not accept VIRTIO_F_VERSION_1") })
        #expect(log.contains { $0.contains("did not offer (bit 40)") })
        rig.driver.write(M.driverFeaturesSel, 0)
        rig.driver.write(M.driverFeatures, 0)
        #expect(rig.device.negotiatedFeatures == VirtioFeature.version1 | VirtioConsole.featureSize, "frozen after FEATURES_OK")
        #expect(rig.recorder.logged.last?.contains("driver wrote features after FEATURES_OK") == true)
    }

    @Test func statusBitsOnlyAccumulateAndZeroResets() throws {
        let rig = try Rig()
        let (_, tx) = try rig.bringUp()
        rig.driver.write(M.status, 0x3)
        #expect(rig.driver.status == 0xF, "clearing bits without a reset is ignored")
        #expect(rig.recorder.logged.last?.contains("cleared status bits") == true)
        rig.driver.write(M.status, 0)
        #expect(rig.driver.status == 0)
        rig.driver.write(M.queueSel, 1)
        #expect(rig.driver.read(M.queueReady) == 0, "reset disables the queues")
        try rig.send("x", on: tx, queue: 1)
        #expect(rig.recorder.text.isEmpty)
    }

    @Test func driverOKWithoutFeaturesOKIsRefused() throws {
        let rig = try Rig()
        rig.driver.write(M.status, 1)
        rig.driver.write(M.status, 3)
        rig.driver.write(M.status, 7)
        #expect(rig.driver.status == 3)
        #expect(rig.recorder.logged.contains { $0.contains("DRIVER_OK refused: FEATURES_OK is not set") })
    }

    @Test func aNotificationBeforeDriverOKConsumesNothing() throws {
        let rig = try Rig()
        let tx = RingBuilder(memory: rig.memory, size: 16, base: 0x10000)
        rig.driver.negotiate(VirtioFeature.version1)
        rig.driver.setUp(queue: 1, tx)
        try rig.send("early", on: tx, queue: 1)
        #expect(try tx.usedIndex == 0)
        #expect(rig.recorder.text.isEmpty)
        #expect(rig.recorder.logged.contains { $0.contains("notified queue 1 (port 0 transmitq) before DRIVER_OK") })
        rig.driver.driverOK()
        rig.driver.write(M.queueNotify, 1)
        #expect(rig.recorder.text == "early")
    }

    @Test func queueSetupIsFrozenWhileTheQueueIsEnabled() throws {
        let rig = try Rig()
        let (_, tx) = try rig.bringUp()
        rig.driver.write(M.queueSel, 1)
        rig.driver.write(M.queueDescLow, 0x90000)
        #expect(rig.device.queue(1)?.descriptorTable == tx.table)
        #expect(rig.recorder.logged.last?.contains("address of queue 1 while it is enabled") == true)
    }

    @Test func readOnlyRegistersAndNarrowAccessesAreRefusedAndLogged() throws {
        let rig = try Rig()
        rig.driver.write(M.magicValue, 0)
        rig.driver.write(M.deviceIDRegister, 9)
        rig.driver.mmio.write(offset: M.status, size: 1, value: 1)
        #expect(rig.driver.read(M.magicValue) == 0x7472_6976)
        #expect(rig.driver.read(M.deviceIDRegister) == 3)
        #expect(rig.driver.status == 0)
        #expect(rig.driver.mmio.read(offset: M.magicValue, size: 2) == 0)
        let log = rig.recorder.logged
        #expect(log.contains("virtio-console: driver wrote 0x0 to MagicValue, which is read-only or reserved: ignored"))
        #expect(log.contains("virtio-console: driver wrote 0x9 to DeviceID, which is read-only or reserved: ignored"))
        #expect(log.contains { $0.contains("wrote 1 bytes at Status: registers are 32 bits wide") })
        #expect(log.contains { $0.contains("read 2 bytes at MagicValue") })
    }

    @Test func configurationSpaceIsReadOnlyExceptEmergencyWrite() throws {
        let rig = try Rig(ports: 2, size: (132, 43))
        #expect(rig.driver.mmio.read(offset: M.configOffset, size: 2) == 132)
        #expect(rig.driver.mmio.read(offset: M.configOffset + 2, size: 2) == 43)
        #expect(rig.driver.mmio.read(offset: M.configOffset + 4, size: 4) == 2)
        rig.driver.mmio.write(offset: M.configOffset, size: 2, value: 1)
        rig.driver.mmio.write(offset: M.configOffset + 4, size: 4, value: 9)
        #expect(rig.driver.mmio.read(offset: M.configOffset, size: 2) == 132)
        #expect(rig.driver.mmio.read(offset: M.configOffset + 4, size: 4) == 2)
        #expect(rig.recorder.logged.contains { $0.contains("to configuration field cols (offset 0, 2 bytes), which is read-only: ignored") })
        #expect(rig.recorder.logged.contains { $0.contains("configuration field max_nr_ports") })
        rig.driver.mmio.write(offset: M.configOffset + 8, size: 4, value: 0x21)
        #expect(rig.recorder.text == "!")
        rig.driver.mmio.write(offset: M.configOffset + 12, size: 4, value: 0)
        #expect(rig.recorder.logged.last?.contains("outside its 12 bytes") == true)
    }

    // MARK: Faults

    @Test func aHostileChainSetsNeedsResetUntilTheDriverResets() throws {
        let rig = try Rig()
        let (_, tx) = try rig.bringUp()
        try tx.descriptor(0, address: 0x40000, length: 1, flags: VirtqueueLayout.descriptorNext, next: 0)
        try tx.publish(0)
        rig.driver.write(M.queueNotify, 1)
        #expect(rig.driver.status & 0x40 != 0, "DEVICE_NEEDS_RESET")
        #expect(rig.driver.read(M.interruptStatus) & 2 != 0, "configuration change interrupt")
        #expect(rig.recorder.interrupts.withLock { $0 } == [.configurationChange])
        #expect(rig.device.faults == ["queue 1 (port 0 transmitq): descriptor chain from head 0 loops: it reaches descriptor 0 a second time; device needs reset (DEVICE_NEEDS_RESET set), waiting for the driver to reset it"])
        #expect(rig.recorder.logged.contains("virtio-console: " + rig.device.faults[0]))
        // Nothing is consumed any more until the reset.
        try rig.send("ignored", on: tx, queue: 1, descriptor: 1)
        #expect(rig.recorder.text.isEmpty)
        rig.driver.write(M.status, 0x4F) // a driver may write back what it read: NEEDS_RESET stays
        #expect(rig.driver.status & 0x40 != 0)
        // Reset and start again: the device works.
        let (_, tx2) = try rig.bringUp()
        try rig.send("again\n", on: tx2, queue: 1)
        #expect(rig.recorder.text == "again\n")
        #expect(rig.device.resetCount >= 1)
        #expect(rig.recorder.logged.contains("virtio-console: reset by the driver after the fault; the device works again"))
    }

    @Test func aRingOutsideRAMIsAFaultAtDriverOK() throws {
        let rig = try Rig()
        rig.driver.negotiate(VirtioFeature.version1)
        let tx = RingBuilder(memory: rig.memory, size: 16, base: 0xFFF00)
        rig.driver.setUp(queue: 1, tx)
        rig.driver.driverOK()
        #expect(rig.driver.status & 0x40 != 0)
        #expect(rig.device.faults.first?.hasPrefix("queue 1 (port 0 transmitq): available ring at 0x100000 (38 bytes) is outside guest RAM") == true, "\(rig.device.faults)")
    }

    @Test func theLogIsRateLimited() throws {
        let rig = try Rig()
        for _ in 0..<200 { rig.driver.write(M.magicValue, 0) }
        #expect(rig.recorder.logged.count == VirtioDevice<VirtioConsole>.logLimit + 1)
        #expect(rig.recorder.logged.last == "virtio-console: more than 64 messages; the rest are not shown")
    }
}

@Suite struct VirtioConsoleMultiportTests {
    /// Decodes the control messages the device put in the control receive ring.
    func messages(_ rig: Rig, _ ring: RingBuilder, from: UInt16, to: UInt16) throws -> [(id: UInt32, event: UInt16, value: UInt16, payload: [UInt8])] {
        var result: [(UInt32, UInt16, UInt16, [UInt8])] = []
        for slot in from..<to {
            let element = try ring.usedElement(slot)
            let address = GuestAddress(0x60000 + 0x100 * UInt64(element.id))
            let bytes = try rig.memory.readBytes(at: address, count: Int(element.length))
            let id = UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 24
            result.append((id, UInt16(bytes[4]) | UInt16(bytes[5]) << 8, UInt16(bytes[6]) | UInt16(bytes[7]) << 8, Array(bytes[8...])))
        }
        return result
    }

    @Test func bringsUpTheConsoleAndTheNamedControlPort() throws {
        let rig = try Rig(ports: 2, size: (100, 30))
        let features = VirtioFeature.version1 | VirtioConsole.featureMultiport | VirtioConsole.featureSize
        #expect(rig.driver.negotiate(features))
        let controlRX = RingBuilder(memory: rig.memory, size: 16, base: 0x30000)
        let controlTX = RingBuilder(memory: rig.memory, size: 16, base: 0x38000)
        let port1TX = RingBuilder(memory: rig.memory, size: 16, base: 0x48000)
        rig.driver.setUp(queue: 2, controlRX)
        rig.driver.setUp(queue: 3, controlTX)
        rig.driver.setUp(queue: 5, port1TX)
        rig.driver.driverOK()
        for i in UInt16(0)..<16 {
            try controlRX.descriptor(i, address: 0x60000 + 0x100 * UInt64(i), length: 0x100, flags: VirtqueueLayout.descriptorWrite)
            try controlRX.publish(i)
        }
        rig.driver.write(M.queueNotify, 2)
        func control(_ id: UInt32, _ event: VirtioConsole.ControlEvent, _ value: UInt16, slot: UInt16) throws {
            let bytes = le32(id) + le16(event.rawValue) + le16(value)
            try rig.memory.write(bytes: bytes, at: GuestAddress(0x70000 + 0x10 * UInt64(slot)))
            try controlTX.descriptor(slot, address: 0x70000 + 0x10 * UInt64(slot), length: 8)
            try controlTX.publish(slot)
            rig.driver.write(M.queueNotify, 3)
        }
        try control(0xFFFF_FFFF, .deviceReady, 1, slot: 0)
        var seen = try messages(rig, controlRX, from: 0, to: try controlRX.usedIndex)
        #expect(seen.map(\.event) == [1, 1] && seen.map(\.id) == [0, 1], "DEVICE_ADD for ports 0 and 1")
        try control(0, .portReady, 1, slot: 1)
        try control(1, .portReady, 1, slot: 2)
        seen = try messages(rig, controlRX, from: 2, to: try controlRX.usedIndex)
        #expect(seen.map(\.event) == [4, 5, 6, 7, 6], "CONSOLE_PORT, RESIZE, PORT_OPEN for 0; PORT_NAME, PORT_OPEN for 1")
        #expect(seen[1].payload == [100, 0, 30, 0], "RESIZE carries cols then rows")
        #expect(String(decoding: seen[3].payload, as: UTF8.self) == "org.swiftlet.control")
        try rig.send("{\"ready\":true}\n", on: port1TX, queue: 5)
        #expect(rig.control.text == "{\"ready\":true}\n")
        #expect(rig.recorder.text.isEmpty, "port 1 does not go to the console")
        try control(1, .portOpen, 1, slot: 3)
        #expect(rig.device.withModel { console, _ in console.guestOpened[1] } == true)
        // A resize reaches the driver as a RESIZE message.
        rig.device.resize(columns: 120, rows: 40)
        let last = try messages(rig, controlRX, from: try controlRX.usedIndex - 1, to: try controlRX.usedIndex)
        #expect(last.first?.event == 5 && last.first?.payload == [120, 0, 40, 0])
    }

    @Test func withoutMultiportAResizeIsAConfigurationChange() throws {
        let rig = try Rig(ports: 2, size: (80, 25))
        _ = try rig.bringUp()
        let generation = rig.driver.read(M.configGeneration)
        rig.device.resize(columns: 81, rows: 26)
        #expect(rig.driver.read(M.configGeneration) == generation &+ 1)
        #expect(rig.recorder.interrupts.withLock { $0 }.last == .configurationChange)
        #expect(rig.driver.mmio.read(offset: M.configOffset, size: 4) == 81 | 26 << 16)
    }
}
