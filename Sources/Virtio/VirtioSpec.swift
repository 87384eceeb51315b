// VirtioSpec: the numbers of the virtio 1.2 specification that every part of Swiftlet's virtio uses:
// device status bits (§2.1), reserved feature bits (§6), descriptor flags (§2.7.5), ring flags (§2.7.6,
// §2.7.8) and device IDs (§5). Names follow the specification; the doc line gives its spelling.

/// The device status field (§2.1), written by the driver as it brings the device up.
public struct VirtioStatus: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// ACKNOWLEDGE: the guest noticed the device.
    public static let acknowledge = VirtioStatus(rawValue: 1)
    /// DRIVER: the guest knows how to drive it.
    public static let driver = VirtioStatus(rawValue: 2)
    /// DRIVER_OK: the driver is set up; the device may consume buffers and send notifications.
    public static let driverOK = VirtioStatus(rawValue: 4)
    /// FEATURES_OK: the driver accepted a feature set the device agreed to.
    public static let featuresOK = VirtioStatus(rawValue: 8)
    /// DEVICE_NEEDS_RESET: the device met an error it cannot recover from without a reset.
    public static let deviceNeedsReset = VirtioStatus(rawValue: 0x40)
    /// FAILED: the driver gave up on the device.
    public static let failed = VirtioStatus(rawValue: 0x80)

    public var description: String {
        var names: [String] = []
        for (bit, name) in [(Self.acknowledge, "ACKNOWLEDGE"), (.driver, "DRIVER"), (.featuresOK, "FEATURES_OK"),
                            (.driverOK, "DRIVER_OK"), (.deviceNeedsReset, "DEVICE_NEEDS_RESET"), (.failed, "FAILED")]
            where contains(bit) { names.append(name) }
        return "0x\(String(rawValue, radix: 16)) (\(names.isEmpty ? "reset" : names.joined(separator: "|")))"
    }
}

/// Feature bits that are not specific to one device type (§6, "Reserved Feature Bits").
public enum VirtioFeature {
    /// VIRTIO_F_INDIRECT_DESC (28): descriptors may point at a table of descriptors.
    public static let indirectDescriptors: UInt64 = 1 << 28
    /// VIRTIO_F_EVENT_IDX (29): used_event / avail_event suppress notifications.
    public static let eventIndex: UInt64 = 1 << 29
    /// VIRTIO_F_VERSION_1 (32): the device follows this specification, not the legacy interface.
    public static let version1: UInt64 = 1 << 32

    /// Names of the bits in `features`, for logs.
    public static func names(_ features: UInt64, deviceBits: [Int: String] = [:]) -> String {
        var names: [String] = []
        for bit in 0..<64 where features & (1 << UInt64(bit)) != 0 {
            switch bit {
            case 28: names.append("INDIRECT_DESC")
            case 29: names.append("EVENT_IDX")
            case 32: names.append("VERSION_1")
            default: names.append(deviceBits[bit] ?? "bit \(bit)")
            }
        }
        return names.isEmpty ? "none" : names.joined(separator: ", ")
    }
}

/// Device IDs (§5).
public enum VirtioDeviceID {
    /// Console (§5.3).
    public static let console: UInt32 = 3
}

/// Split-virtqueue layout constants (§2.7).
public enum VirtqueueLayout {
    /// struct virtq_desc: le64 addr, le32 len, le16 flags, le16 next.
    public static let descriptorSize: UInt64 = 16
    /// VIRTQ_DESC_F_NEXT: the buffer continues in `next`.
    public static let descriptorNext: UInt16 = 1
    /// VIRTQ_DESC_F_WRITE: the buffer is device-writable (otherwise device-readable).
    public static let descriptorWrite: UInt16 = 2
    /// VIRTQ_DESC_F_INDIRECT: the buffer holds a table of descriptors.
    public static let descriptorIndirect: UInt16 = 4
    /// VIRTQ_AVAIL_F_NO_INTERRUPT: the driver does not want a notification for used buffers (no EVENT_IDX).
    public static let availableNoInterrupt: UInt16 = 1
    /// VIRTQ_USED_F_NO_NOTIFY: the device does not want kicks (no EVENT_IDX).
    public static let usedNoNotify: UInt16 = 1
    /// The largest queue size of a split virtqueue (§2.7: sizes are powers of 2 up to 32768).
    public static let maximumSize: UInt16 = 32768

    /// Bytes of the descriptor table, available ring and used ring for `size` entries (with the event fields).
    public static func descriptorTableBytes(_ size: UInt16) -> UInt64 { descriptorSize * UInt64(size) }
    public static func availableRingBytes(_ size: UInt16) -> UInt64 { 6 + 2 * UInt64(size) }
    public static func usedRingBytes(_ size: UInt16) -> UInt64 { 6 + 8 * UInt64(size) }
}
