// VirtioMMIOTransport: the virtio-mmio register block, version 2 (virtio 1.2 §4.2.2), as a bus device.
//
// Offsets (all registers 32 bits wide; the device configuration space from 0x100 takes any width):
//   0x000 MagicValue "virt"   0x004 Version 2          0x008 DeviceID          0x00c VendorID
//   0x010 DeviceFeatures      0x014 DeviceFeaturesSel  0x020 DriverFeatures    0x024 DriverFeaturesSel
//   0x030 QueueSel            0x034 QueueNumMax        0x038 QueueNum          0x044 QueueReady
//   0x050 QueueNotify         0x060 InterruptStatus    0x064 InterruptACK      0x070 Status
//   0x080/0x084 QueueDesc     0x090/0x094 QueueDriver  0x0a0/0x0a4 QueueDevice 0x0ac SHMSel
//   0x0b0/0x0b4 SHMLen        0x0b8/0x0bc SHMBase      0x0fc ConfigGeneration  0x100+ Config
// The transport owns only the select registers; everything else is the shared VirtioDevice. A write to a
// read-only register, a read of a write-only one, or a register access that is not 32 bits wide is logged
// and ignored (reads return 0). Linux finds the block through `virtio_mmio.device=<size>@<base>:<irq>`.
import Devices
import Synchronization

public final class VirtioMMIOTransport: BusDevice, @unchecked Sendable {
    /// MagicValue: "virt" in little-endian.
    public static let magic: UInt32 = 0x7472_6976
    public static let version: UInt32 = 2
    /// VendorID: "SWFT" (any value is allowed; Linux ignores it).
    public static let vendorID: UInt32 = 0x5446_5753
    /// Bytes the register block occupies on the bus (one page, the usual size).
    public static let size: UInt64 = 0x1000
    public static let configOffset: UInt64 = 0x100

    // Register offsets (§4.2.2).
    public static let magicValue: UInt64 = 0x000, versionRegister: UInt64 = 0x004, deviceIDRegister: UInt64 = 0x008
    public static let vendorIDRegister: UInt64 = 0x00c, deviceFeatures: UInt64 = 0x010, deviceFeaturesSel: UInt64 = 0x014
    public static let driverFeatures: UInt64 = 0x020, driverFeaturesSel: UInt64 = 0x024, queueSel: UInt64 = 0x030
    public static let queueNumMax: UInt64 = 0x034, queueNum: UInt64 = 0x038, queueReady: UInt64 = 0x044
    public static let queueNotify: UInt64 = 0x050, interruptStatus: UInt64 = 0x060, interruptACK: UInt64 = 0x064
    public static let status: UInt64 = 0x070, queueDescLow: UInt64 = 0x080, queueDescHigh: UInt64 = 0x084
    public static let queueDriverLow: UInt64 = 0x090, queueDriverHigh: UInt64 = 0x094
    public static let queueDeviceLow: UInt64 = 0x0a0, queueDeviceHigh: UInt64 = 0x0a4
    public static let shmSel: UInt64 = 0x0ac, shmLenLow: UInt64 = 0x0b0, shmLenHigh: UInt64 = 0x0b4
    public static let shmBaseLow: UInt64 = 0x0b8, shmBaseHigh: UInt64 = 0x0bc, configGeneration: UInt64 = 0x0fc

    public let device: any VirtioDeviceInterface

    struct Selects {
        var deviceFeatures: UInt32 = 0
        var driverFeatures: UInt32 = 0
        var queue: UInt32 = 0
    }
    private let selects = Mutex(Selects())

    private let notifyObserver: (@Sendable (Int) -> Void)?

    /// - Parameters:
    ///   - interrupt: signals the block's interrupt line (an edge: a pulse, or an irqfd write).
    ///   - notifyObserver: told of each QueueNotify write that reaches the transport (kicks that KVM hands
    ///     to an ioeventfd never do), before the device handles it: the VMM counts and traces them.
    public init(device: any VirtioDeviceInterface, interrupt: @escaping @Sendable (VirtioInterruptCause) -> Void,
                notifyObserver: (@Sendable (Int) -> Void)? = nil) {
        self.device = device
        self.notifyObserver = notifyObserver
        device.setInterruptHandler(interrupt)
    }

    static func name(of offset: UInt64) -> String {
        switch offset {
        case magicValue: "MagicValue"
        case versionRegister: "Version"
        case deviceIDRegister: "DeviceID"
        case vendorIDRegister: "VendorID"
        case deviceFeatures: "DeviceFeatures"
        case deviceFeaturesSel: "DeviceFeaturesSel"
        case driverFeatures: "DriverFeatures"
        case driverFeaturesSel: "DriverFeaturesSel"
        case queueSel: "QueueSel"
        case queueNumMax: "QueueNumMax"
        case queueNum: "QueueNum"
        case queueReady: "QueueReady"
        case queueNotify: "QueueNotify"
        case interruptStatus: "InterruptStatus"
        case interruptACK: "InterruptACK"
        case status: "Status"
        case queueDescLow: "QueueDescLow"
        case queueDescHigh: "QueueDescHigh"
        case queueDriverLow: "QueueDriverLow"
        case queueDriverHigh: "QueueDriverHigh"
        case queueDeviceLow: "QueueDeviceLow"
        case queueDeviceHigh: "QueueDeviceHigh"
        case shmSel: "SHMSel"
        case shmLenLow: "SHMLenLow"
        case shmLenHigh: "SHMLenHigh"
        case shmBaseLow: "SHMBaseLow"
        case shmBaseHigh: "SHMBaseHigh"
        case configGeneration: "ConfigGeneration"
        default: offset >= configOffset ? "config+0x\(String(offset - configOffset, radix: 16))" : "offset 0x\(String(offset, radix: 16))"
        }
    }

    /// The register by its name in virtio 1.2 §4.2.2 (QueueNotify, InterruptStatus, ...), for `--trace-exits`.
    public func register(at offset: UInt64, size: Int, isWrite: Bool) -> BusRegister? {
        BusRegister(Self.name(of: offset), meaning: "virtio-mmio register (virtio 1.2 §4.2.2)")
    }

    public func read(offset: UInt64, size: Int) -> UInt64 {
        if offset >= Self.configOffset {
            return device.readConfig(offset: Int(offset - Self.configOffset), size: size)
        }
        guard size == 4, offset % 4 == 0 else {
            device.logRefusal("driver read \(size) bytes at \(Self.name(of: offset)): registers are 32 bits wide; read as 0")
            return 0
        }
        let queue = Int(selects.withLock { $0.queue })
        switch offset {
        case Self.magicValue: return UInt64(Self.magic)
        case Self.versionRegister: return UInt64(Self.version)
        case Self.deviceIDRegister: return UInt64(device.deviceID)
        case Self.vendorIDRegister: return UInt64(Self.vendorID)
        case Self.deviceFeatures: return UInt64(device.deviceFeatures(page: selects.withLock { $0.deviceFeatures }))
        case Self.queueNumMax: return UInt64(device.queue(queue)?.maxSize ?? 0)
        case Self.queueReady: return device.queue(queue)?.ready == true ? 1 : 0
        case Self.interruptStatus: return UInt64(device.interruptStatus)
        case Self.status: return UInt64(device.status)
        case Self.shmLenLow, Self.shmLenHigh: return 0xFFFF_FFFF // no shared memory regions (§4.2.2: length -1)
        case Self.shmBaseLow, Self.shmBaseHigh: return 0xFFFF_FFFF
        case Self.configGeneration: return UInt64(device.configGeneration)
        default:
            device.logRefusal("driver read \(Self.name(of: offset)), which is write-only or reserved: read as 0")
            return 0
        }
    }

    public func write(offset: UInt64, size: Int, value: UInt64) {
        if offset >= Self.configOffset {
            device.writeConfig(offset: Int(offset - Self.configOffset), size: size, value: value)
            return
        }
        guard size == 4, offset % 4 == 0 else {
            device.logRefusal("driver wrote \(size) bytes at \(Self.name(of: offset)): registers are 32 bits wide; ignored")
            return
        }
        let v = UInt32(truncatingIfNeeded: value)
        let queue = Int(selects.withLock { $0.queue })
        switch offset {
        case Self.deviceFeaturesSel: selects.withLock { $0.deviceFeatures = v }
        case Self.driverFeatures: device.setDriverFeatures(page: selects.withLock { $0.driverFeatures }, value: v)
        case Self.driverFeaturesSel: selects.withLock { $0.driverFeatures = v }
        case Self.queueSel: selects.withLock { $0.queue = v }
        case Self.queueNum: device.setQueueSize(queue, UInt16(truncatingIfNeeded: v))
            if v > 0xFFFF { device.logRefusal("driver wrote QueueNum \(v), more than 16 bits: truncated") }
        case Self.queueReady: device.setQueueReady(queue, v & 1 == 1)
        case Self.queueNotify:
            notifyObserver?(Int(v & 0xFFFF))
            device.notify(queue: Int(v & 0xFFFF))
        case Self.interruptACK: device.acknowledgeInterrupt(v)
        case Self.status: device.setStatus(UInt8(truncatingIfNeeded: v))
        case Self.queueDescLow: device.setQueueAddress(queue, .descriptorTable, high: false, v)
        case Self.queueDescHigh: device.setQueueAddress(queue, .descriptorTable, high: true, v)
        case Self.queueDriverLow: device.setQueueAddress(queue, .driverArea, high: false, v)
        case Self.queueDriverHigh: device.setQueueAddress(queue, .driverArea, high: true, v)
        case Self.queueDeviceLow: device.setQueueAddress(queue, .deviceArea, high: false, v)
        case Self.queueDeviceHigh: device.setQueueAddress(queue, .deviceArea, high: true, v)
        case Self.shmSel: break
        default:
            device.logRefusal("driver wrote 0x\(String(v, radix: 16)) to \(Self.name(of: offset)), which is read-only or reserved: ignored")
        }
    }
}
