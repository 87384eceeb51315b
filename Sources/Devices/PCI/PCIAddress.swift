// PCIAddress: where a PCI function sits (bus, device, function), and PCIConfigAddress, the CONFIG_ADDRESS
// register of configuration mechanism #1 that names one dword of a function's configuration space.
//
// PCI Local Bus Specification 3.0, §3.2.2.3.2 "Software Generation of Configuration Transactions":
// CONFIG_ADDRESS is the 32-bit register at I/O port 0xCF8 (dword accesses only):
//   bit 31      enable: while set, accesses to CONFIG_DATA (0xCFC-0xCFF) are configuration transactions
//   bits 30:28  reserved, read as 0
//   bits 27:24  reserved in the PCI specification; AMD processors use them for bits 11:8 of the register
//               ("ExtRegNo", reaching the 4 KiB PCI Express space), and Linux does so on AMD hosts
//               ("PCI: Using configuration type 1 for extended access"); kept so such accesses are not
//               mistaken for accesses to the first 256 bytes
//   bits 23:16  bus number
//   bits 15:11  device number (0-31)
//   bits 10:8   function number (0-7)
//   bits 7:2    register number: which dword of the 256-byte configuration space
//   bits 1:0    read as 0 (the byte within the dword comes from which CONFIG_DATA port is accessed)
// Linux spells the same encoding PCI_CONF1_ADDRESS (arch/x86/pci/direct.c).

/// A PCI function's bus/device/function triple ("BDF"), printed the way lspci does: `00:01.0`.
public struct PCIAddress: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let bus: UInt8
    /// Device (slot) number, 0-31.
    public let device: UInt8
    /// Function number, 0-7.
    public let function: UInt8

    /// Nil when `device` > 31 or `function` > 7.
    public init?(bus: UInt8 = 0, device: UInt8, function: UInt8 = 0) {
        guard device < 32, function < 8 else { return nil }
        self.bus = bus; self.device = device; self.function = function
    }

    /// 8 bits of device and function as one number (Linux's `devfn`).
    public var deviceFunction: UInt8 { device << 3 | function }

    public static func < (a: PCIAddress, b: PCIAddress) -> Bool {
        (a.bus, a.deviceFunction) < (b.bus, b.deviceFunction)
    }

    public var description: String {
        func hex(_ v: UInt8, _ width: Int) -> String {
            let s = String(v, radix: 16)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(hex(bus, 2)):\(hex(device, 2)).\(function)"
    }
}

/// The CONFIG_ADDRESS register (port 0xCF8) of configuration mechanism #1.
public struct PCIConfigAddress: Equatable, Sendable, CustomStringConvertible {
    /// The bits software can set: enable, AMD's extended register bits, bus, device, function and register;
    /// the rest read as 0.
    public static let implementedBits: UInt32 = 0x8FFF_FFFC
    public static let enableBit: UInt32 = 1 << 31

    public let rawValue: UInt32

    /// Keeps only the implemented bits, as the register does when written.
    public init(rawValue: UInt32) { self.rawValue = rawValue & Self.implementedBits }

    /// The address of the dword holding byte `register` (0-4095; 256 and up in AMD's extended form) of
    /// function `address`'s configuration space.
    public init(address: PCIAddress, register: Int, enabled: Bool = true) {
        self.init(rawValue: (enabled ? Self.enableBit : 0) | UInt32(register & 0xF00) << 16 | UInt32(address.bus) << 16
            | UInt32(address.deviceFunction) << 8 | UInt32(register & 0xFC))
    }

    public var isEnabled: Bool { rawValue & Self.enableBit != 0 }
    public var bus: UInt8 { UInt8(truncatingIfNeeded: rawValue >> 16) }
    public var device: UInt8 { UInt8(truncatingIfNeeded: rawValue >> 11) & 0x1F }
    public var function: UInt8 { UInt8(truncatingIfNeeded: rawValue >> 8) & 0x7 }
    /// The function this register names (always valid: the fields are 5 and 3 bits wide).
    public var address: PCIAddress { PCIAddress(bus: bus, device: device, function: function)! }
    /// Byte offset of the named dword in configuration space (0, 4, ..., 252; up to 4092 with AMD's extension).
    public var register: Int { Int(rawValue >> 16 & 0xF00 | rawValue & 0xFC) }

    public var description: String {
        "\(isEnabled ? "" : "disabled ")\(address) register 0x\(String(register, radix: 16))"
    }
}
