// VirtioPCITransport: a virtio device as a modern (virtio 1.x only) PCI function (virtio 1.2 §4.1), on top of
// the generic PCI layer (Sources/Devices/PCI: configuration space, BARs, capability list, MSI-X, INTx).
//
// Identity (§4.1.2): vendor 0x1AF4, device 0x1040 + the virtio device ID (0x1043 for a console), revision 1
// (a non-transitional device), subsystem vendor 0x1AF4 and ID 0x40.
// BAR 0 (16 KiB, 32-bit memory) holds the virtio structures, each named by a vendor-specific capability
// (struct virtio_pci_cap, §4.1.4: cfg_type, bar, offset, length):
//   0x0000 common configuration (cfg_type 1, §4.1.4.3)   feature and queue selects, status, queue setup
//   0x1000 ISR status          (cfg_type 3, §4.1.4.5)   1 byte, read-to-clear; deasserts INTx
//   0x2000 device configuration (cfg_type 4, §4.1.4.6)  the device type's config space
//   0x3000 notifications       (cfg_type 2, §4.1.4.4)   queue q is kicked by a 16-bit write at 0x3000 + 4q
//                                                        (queue_notify_off q, notify_off_multiplier 4)
// and a VIRTIO_PCI_CAP_PCI_CFG capability (cfg_type 5, §4.1.4.9) gives the same registers through
// configuration space (bar, offset, length, then pci_cfg_data reads and writes them).
// BAR 1 (4 KiB) holds the MSI-X table (one vector per queue and one for configuration changes) and its
// pending-bit array. Interrupts (§4.1.5): with MSI-X enabled a queue's or the configuration's vector is
// signalled (nothing when it is VIRTIO_MSI_NO_VECTOR); without MSI-X the ISR bit is set and INTA# asserted
// until the driver reads ISR. Everything else (status, features, queues, faults) is the shared VirtioDevice.
import Devices
import Synchronization

public final class VirtioPCITransport: PCIDevice, @unchecked Sendable {
    public static let vendorID: UInt16 = 0x1AF4
    /// §4.1.2.1: 0x1040 + the virtio device ID for a modern device.
    public static func pciDeviceID(_ virtioDeviceID: UInt32) -> UInt16 { 0x1040 + UInt16(truncatingIfNeeded: virtioDeviceID) }

    /// cfg_type values of struct virtio_pci_cap (§4.1.4).
    public enum CapabilityType {
        public static let common: UInt8 = 1, notify: UInt8 = 2, isr: UInt8 = 3, device: UInt8 = 4, pciConfig: UInt8 = 5
    }

    /// BAR 0 layout.
    public static let structuresBAR = 0
    public static let structuresBARSize: UInt64 = 0x4000
    public static let commonOffset: UInt64 = 0x0000, commonLength: UInt64 = 0x40
    public static let isrOffset: UInt64 = 0x1000, isrLength: UInt64 = 4
    public static let deviceOffset: UInt64 = 0x2000
    public static let notifyOffset: UInt64 = 0x3000
    /// notify_off_multiplier: bytes between two queues' notification addresses.
    public static let notifyMultiplier: UInt32 = 4
    /// BAR 1: MSI-X table at 0, pending-bit array at 0x800.
    public static let msixBAR = 1
    /// VIRTIO_MSI_NO_VECTOR.
    public static let noVector: UInt16 = 0xFFFF

    // Common configuration offsets (§4.1.4.3).
    public enum Common {
        public static let deviceFeatureSelect: UInt64 = 0x00, deviceFeature: UInt64 = 0x04
        public static let driverFeatureSelect: UInt64 = 0x08, driverFeature: UInt64 = 0x0C
        public static let configMSIXVector: UInt64 = 0x10, numQueues: UInt64 = 0x12
        public static let deviceStatus: UInt64 = 0x14, configGeneration: UInt64 = 0x15
        public static let queueSelect: UInt64 = 0x16, queueSize: UInt64 = 0x18
        public static let queueMSIXVector: UInt64 = 0x1A, queueEnable: UInt64 = 0x1C, queueNotifyOff: UInt64 = 0x1E
        public static let queueDesc: UInt64 = 0x20, queueDriver: UInt64 = 0x28, queueDevice: UInt64 = 0x30
    }

    public let device: any VirtioDeviceInterface
    public let pciFunction: PCIFunction
    /// Configuration-space offset of the VIRTIO_PCI_CAP_PCI_CFG capability.
    let pciConfigCapability: Int

    struct State {
        var deviceFeatureSelect: UInt32 = 0
        var driverFeatureSelect: UInt32 = 0
        var queueSelect: UInt16 = 0
        var configVector: UInt16 = VirtioPCITransport.noVector
        var queueVectors: [UInt16]
    }
    private let state: Mutex<State>
    private let notifyObserver: (@Sendable (Int) -> Void)?

    /// The function definition for `device` (exposed for tests and the VMM's MP table).
    public static func definition(for device: any VirtioDeviceInterface) -> PCIFunctionDefinition {
        func cap(_ type: UInt8, bar: UInt8, offset: UInt64, length: UInt64, extra: [UInt8] = []) -> [UInt8] {
            [type, bar, 0, 0, 0] + le32(UInt32(offset)) + le32(UInt32(length)) + extra
        }
        let queues = device.queueCount
        let pciConfig = cap(CapabilityType.pciConfig, bar: 0, offset: 0, length: 0, extra: [0, 0, 0, 0])
        var pciConfigMask = [UInt8](repeating: 0, count: pciConfig.count)
        pciConfigMask[1] = 0xFF                                   // bar
        for i in 5..<17 { pciConfigMask[i] = 0xFF }               // offset, length, pci_cfg_data
        return PCIFunctionDefinition(
            vendorID: vendorID, deviceID: pciDeviceID(device.deviceID), revisionID: 1,
            classCode: .otherCommunicationController, subsystemVendorID: vendorID, subsystemID: 0x40,
            interruptPin: .intA,
            bars: [PCIBARDefinition(index: structuresBAR, sizeInBytes: structuresBARSize),
                   PCIBARDefinition(index: msixBAR, sizeInBytes: 0x1000)],
            capabilities: [
                .vendorSpecific(payload: cap(CapabilityType.common, bar: 0, offset: commonOffset, length: commonLength)),
                .vendorSpecific(payload: cap(CapabilityType.notify, bar: 0, offset: notifyOffset,
                                             length: UInt64(queues) * UInt64(notifyMultiplier), extra: le32(notifyMultiplier))),
                .vendorSpecific(payload: cap(CapabilityType.isr, bar: 0, offset: isrOffset, length: isrLength)),
                .vendorSpecific(payload: cap(CapabilityType.device, bar: 0, offset: deviceOffset, length: UInt64(max(device.configSize, 4)))),
                .vendorSpecific(payload: pciConfig, writableMask: pciConfigMask),
            ],
            msix: PCIMSIXDefinition(vectorCount: queues + 1, tableBAR: msixBAR, tableOffset: 0,
                                    pendingBitArrayBAR: msixBAR, pendingBitArrayOffset: 0x800))
    }

    /// - Parameters:
    ///   - interrupts: where MSI-X messages and the INTx level go (the VMM: KVM_SIGNAL_MSI, KVM_IRQ_LINE).
    ///   - notifyObserver: told of each notification that reaches the transport (kicks that KVM hands to an
    ///     ioeventfd never do), before the device handles it.
    public init(device: any VirtioDeviceInterface, interrupts: PCIInterruptWiring,
                notifyObserver: (@Sendable (Int) -> Void)? = nil) throws(PCIError) {
        self.device = device
        self.notifyObserver = notifyObserver
        let function = try PCIFunction(Self.definition(for: device), interrupts: interrupts)
        self.pciFunction = function
        self.pciConfigCapability = function.capabilityOffsets[4]
        self.state = Mutex(State(queueVectors: Array(repeating: Self.noVector, count: device.queueCount)))
        device.setInterruptHandler { [unowned self] cause in self.interrupt(cause) }
    }

    /// The guest-physical address of queue `index`'s notification register, when BAR 0 is at `barBase`.
    public static func notifyAddress(barBase: UInt64, queue index: Int) -> UInt64 {
        barBase + notifyOffset + UInt64(index) * UInt64(notifyMultiplier)
    }

    // MARK: Interrupts

    /// Called by the device core (its lock held) to interrupt the driver.
    private func interrupt(_ cause: VirtioInterruptCause) {
        let vector: UInt16 = state.withLock { s in
            switch cause {
            case let .usedBuffer(queue): return queue < s.queueVectors.count ? s.queueVectors[queue] : Self.noVector
            case .configurationChange: return s.configVector
            }
        }
        if pciFunction.isMSIXEnabled {
            if vector != Self.noVector { pciFunction.signal(vector: Int(vector)) }
        } else {
            // The core set the ISR bit; the pin stays asserted until the driver reads ISR.
            pciFunction.setINTx(true)
        }
    }

    // MARK: BAR accesses

    public func readBAR(_ bar: Int, offset: UInt64, size: Int) -> UInt64 {
        guard bar == Self.structuresBAR else { return 0 }
        switch offset {
        case Self.commonOffset..<(Self.commonOffset + Self.commonLength):
            return readCommon(offset - Self.commonOffset, size: size)
        case Self.isrOffset..<(Self.isrOffset + Self.isrLength):
            // §4.1.4.5: reading ISR clears it and deasserts INTx (done under the device's lock, so an
            // interrupt raised meanwhile is not lost).
            guard offset == Self.isrOffset else { return 0 }
            return UInt64(device.takeInterruptStatus { [pciFunction] in pciFunction.setINTx(false) })
        case Self.deviceOffset..<Self.notifyOffset:
            return device.readConfig(offset: Int(offset - Self.deviceOffset), size: size)
        case Self.notifyOffset..<Self.structuresBARSize:
            device.logRefusal("driver read the notification area at BAR 0 + 0x\(String(offset, radix: 16)), which is write-only: read as 0")
            return 0
        default:
            return 0
        }
    }

    public func writeBAR(_ bar: Int, offset: UInt64, size: Int, value: UInt64) {
        guard bar == Self.structuresBAR else { return }
        switch offset {
        case Self.commonOffset..<(Self.commonOffset + Self.commonLength):
            writeCommon(offset - Self.commonOffset, size: size, value: value)
        case Self.isrOffset..<(Self.isrOffset + Self.isrLength):
            device.logRefusal("driver wrote 0x\(String(value, radix: 16)) to ISR status, which is read-only: ignored")
        case Self.deviceOffset..<Self.notifyOffset:
            device.writeConfig(offset: Int(offset - Self.deviceOffset), size: size, value: value)
        case Self.notifyOffset..<Self.structuresBARSize:
            let relative = offset - Self.notifyOffset
            let queue = Int(relative / UInt64(Self.notifyMultiplier))
            guard relative % UInt64(Self.notifyMultiplier) == 0, queue < device.queueCount else {
                device.logRefusal("driver wrote to BAR 0 + 0x\(String(offset, radix: 16)), which is no queue's notification address: ignored")
                return
            }
            notifyObserver?(queue)
            device.notify(queue: queue)
        default:
            break
        }
    }

    /// The register an access into BAR 0 reaches, in the specification's words (§4.1.4), for `--trace-exits`.
    public func barRegister(_ bar: Int, offset: UInt64, size: Int, isWrite: Bool) -> BusRegister? {
        guard bar == Self.structuresBAR else { return nil }
        switch offset {
        case Self.commonOffset..<(Self.commonOffset + Self.commonLength):
            guard let f = field(offset - Self.commonOffset, size) else { return BusRegister("common configuration (no field)") }
            return BusRegister(f.name + (f.width == 8 ? (f.high ? " (high)" : " (low)") : ""), meaning: "virtio-pci common configuration (virtio 1.2 §4.1.4.3)")
        case Self.isrOffset..<(Self.isrOffset + Self.isrLength):
            return BusRegister("ISR status", meaning: "virtio-pci ISR status: reading it clears it and deasserts INTx (§4.1.4.5)")
        case Self.deviceOffset..<Self.notifyOffset:
            return BusRegister("device configuration", detail: "+0x\(String(offset - Self.deviceOffset, radix: 16))")
        case Self.notifyOffset..<Self.structuresBARSize:
            return BusRegister("notify", meaning: "virtio-pci notification: a write kicks the queue", detail: "queue \((offset - Self.notifyOffset) / UInt64(Self.notifyMultiplier))")
        default:
            return nil
        }
    }

    // MARK: Common configuration (§4.1.4.3)

    /// Fields: offset, width, name; an access must cover one field exactly, or one half of a 64-bit one.
    static let commonFields: [(offset: UInt64, width: Int, name: String)] = [
        (Common.deviceFeatureSelect, 4, "device_feature_select"), (Common.deviceFeature, 4, "device_feature"),
        (Common.driverFeatureSelect, 4, "driver_feature_select"), (Common.driverFeature, 4, "driver_feature"),
        (Common.configMSIXVector, 2, "config_msix_vector"), (Common.numQueues, 2, "num_queues"),
        (Common.deviceStatus, 1, "device_status"), (Common.configGeneration, 1, "config_generation"),
        (Common.queueSelect, 2, "queue_select"), (Common.queueSize, 2, "queue_size"),
        (Common.queueMSIXVector, 2, "queue_msix_vector"), (Common.queueEnable, 2, "queue_enable"),
        (Common.queueNotifyOff, 2, "queue_notify_off"), (Common.queueDesc, 8, "queue_desc"),
        (Common.queueDriver, 8, "queue_driver"), (Common.queueDevice, 8, "queue_device"),
    ]

    /// The field an access of `size` bytes at `offset` names, and whether it is the high half of a 64-bit one.
    func field(_ offset: UInt64, _ size: Int) -> (offset: UInt64, width: Int, name: String, high: Bool)? {
        for f in Self.commonFields {
            if offset == f.offset && size == f.width { return (f.offset, f.width, f.name, false) }
            if f.width == 8 && size == 4 && (offset == f.offset || offset == f.offset + 4) {
                return (f.offset, f.width, f.name, offset == f.offset + 4)
            }
        }
        return nil
    }

    func readCommon(_ offset: UInt64, size: Int) -> UInt64 {
        guard let f = field(offset, size) else {
            device.logRefusal("driver read \(size) bytes at common configuration offset 0x\(String(offset, radix: 16)), which is no field: read as 0")
            return 0
        }
        let s = state.withLock { $0 }
        let queue = device.queue(Int(s.queueSelect))
        var value: UInt64
        switch f.offset {
        case Common.deviceFeatureSelect: value = UInt64(s.deviceFeatureSelect)
        case Common.deviceFeature: value = UInt64(device.deviceFeatures(page: s.deviceFeatureSelect))
        case Common.driverFeatureSelect: value = UInt64(s.driverFeatureSelect)
        case Common.driverFeature: value = UInt64(device.driverFeatures(page: s.driverFeatureSelect))
        case Common.configMSIXVector: value = UInt64(s.configVector)
        case Common.numQueues: value = UInt64(device.queueCount)
        case Common.deviceStatus: value = UInt64(device.status)
        case Common.configGeneration: value = UInt64(device.configGeneration & 0xFF)
        case Common.queueSelect: value = UInt64(s.queueSelect)
        // §4.1.4.3.2: a queue that does not exist reads size 0.
        case Common.queueSize: value = UInt64(queue?.size ?? 0)
        case Common.queueMSIXVector: value = UInt64(Int(s.queueSelect) < s.queueVectors.count ? s.queueVectors[Int(s.queueSelect)] : Self.noVector)
        case Common.queueEnable: value = queue?.ready == true ? 1 : 0
        case Common.queueNotifyOff: value = UInt64(s.queueSelect)
        case Common.queueDesc: value = queue?.descriptorTable.rawValue ?? 0
        case Common.queueDriver: value = queue?.driverArea.rawValue ?? 0
        case Common.queueDevice: value = queue?.deviceArea.rawValue ?? 0
        default: value = 0
        }
        if f.width == 8 && size == 4 { value = f.high ? value >> 32 : value & 0xFFFF_FFFF }
        return value
    }

    func writeCommon(_ offset: UInt64, size: Int, value: UInt64) {
        guard let f = field(offset, size) else {
            device.logRefusal("driver wrote \(size) bytes at common configuration offset 0x\(String(offset, radix: 16)), which is no field: ignored")
            return
        }
        let v32 = UInt32(truncatingIfNeeded: value), v16 = UInt16(truncatingIfNeeded: value)
        let queue = Int(state.withLock { $0.queueSelect })
        switch f.offset {
        case Common.deviceFeatureSelect: state.withLock { $0.deviceFeatureSelect = v32 }
        case Common.driverFeatureSelect: state.withLock { $0.driverFeatureSelect = v32 }
        case Common.driverFeature: device.setDriverFeatures(page: state.withLock { $0.driverFeatureSelect }, value: v32)
        case Common.configMSIXVector:
            // §4.1.5.1.2: a vector the function does not have reads back as NO_VECTOR.
            let accepted = v16 == Self.noVector || Int(v16) <= device.queueCount ? v16 : Self.noVector
            state.withLock { $0.configVector = accepted }
        case Common.deviceStatus:
            device.setStatus(UInt8(truncatingIfNeeded: value))
            if value & 0xFF == 0 {
                // Reset (§4.1.4.3.1): the vectors go back to NO_VECTOR, INTx is released.
                state.withLock { s in
                    s.configVector = Self.noVector
                    s.queueVectors = Array(repeating: Self.noVector, count: s.queueVectors.count)
                }
                pciFunction.setINTx(false)
            }
        case Common.queueSelect: state.withLock { $0.queueSelect = v16 }
        case Common.queueSize: device.setQueueSize(queue, v16)
        case Common.queueMSIXVector:
            let accepted = v16 == Self.noVector || Int(v16) <= device.queueCount ? v16 : Self.noVector
            state.withLock { s in if queue < s.queueVectors.count { s.queueVectors[queue] = accepted } }
        case Common.queueEnable:
            guard v16 == 1 else {
                device.logRefusal("driver wrote \(v16) to queue_enable of queue \(queue): only 1 may be written (§4.1.4.3.2): ignored")
                return
            }
            device.setQueueReady(queue, true)
        case Common.queueDesc: device.setQueueAddress(queue, .descriptorTable, high: f.high, v32)
            if size == 8 { device.setQueueAddress(queue, .descriptorTable, high: true, UInt32(truncatingIfNeeded: value >> 32)) }
        case Common.queueDriver: device.setQueueAddress(queue, .driverArea, high: f.high, v32)
            if size == 8 { device.setQueueAddress(queue, .driverArea, high: true, UInt32(truncatingIfNeeded: value >> 32)) }
        case Common.queueDevice: device.setQueueAddress(queue, .deviceArea, high: f.high, v32)
            if size == 8 { device.setQueueAddress(queue, .deviceArea, high: true, UInt32(truncatingIfNeeded: value >> 32)) }
        default:
            device.logRefusal("driver wrote 0x\(String(value, radix: 16)) to \(f.name), which is read-only: ignored")
        }
    }

    // MARK: VIRTIO_PCI_CAP_PCI_CFG (§4.1.4.9)

    /// pci_cfg_data reads the BAR window its capability names (bar, offset, length: 1, 2 or 4 bytes).
    public func interceptConfigRead(offset: Int, size: Int) -> UInt32? {
        let data = pciConfigCapability + 16
        guard offset == data else { return nil }
        guard let (bar, at, length) = pciConfigWindow(), length == size else { return 0 }
        return UInt32(truncatingIfNeeded: readBAR(bar, offset: at, size: length))
    }

    public func didWriteConfig(offset: Int, size: Int, value: UInt32) {
        let data = pciConfigCapability + 16
        guard offset == data, let (bar, at, length) = pciConfigWindow(), length == size else { return }
        writeBAR(bar, offset: at, size: length, value: UInt64(value))
    }

    private func pciConfigWindow() -> (Int, UInt64, Int)? {
        let cap = pciConfigCapability
        let bar = Int(pciFunction.readConfig(offset: cap + 4, size: 1))
        let offset = UInt64(pciFunction.readConfig(offset: cap + 8, size: 4))
        let length = Int(pciFunction.readConfig(offset: cap + 12, size: 4))
        guard [1, 2, 4].contains(length), offset % UInt64(length) == 0 else { return nil }
        return (bar, offset, length)
    }
}
