// VirtioPCIFuzzer: a libFuzzer target for a virtio console on virtio-pci (Sources/Virtio/VirtioPCITransport
// on Sources/Devices/PCI: the host bridge's configuration mechanism #1, configuration space with its
// capability list and BARs, the MSI-X table and pending bits, the virtio common configuration, ISR,
// notifications and the VIRTIO_PCI_CAP_PCI_CFG window), built and run by fuzz/run.sh.
//
// Each input is a hostile driver: its first two bytes say where its operations end; the bytes after that
// are copied into guest RAM (so queue addresses can point at rings the input wrote), and the operations,
// from the front, are: configuration-space reads and writes through ports 0xCF8/0xCFC
// (any device, register, size), BAR 0 and BAR 1 accesses at the addresses the BARs decode now, raw accesses
// anywhere in the PCI window, host input for the console, and bridge resets. Faults are expected; what must
// never happen is a trap, an MSI for a vector outside the MSI-X table, or a configuration read wider than
// its access.
import Devices
import GuestMemory
import Virtio

let memory = try! GuestMemory(layout: [(GuestAddress(0), 0x4000), (GuestAddress(0x8000), 0x1000)])
let window = PCIMemoryRange(base: 0xE000_0000, length: 0x1000_0000)!

final class Sink: @unchecked Sendable { var bytes = 0; var vectors: [Int] = [] }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    try! memory.zero(at: GuestAddress(0), count: 0x4000)
    try! memory.zero(at: GuestAddress(0x8000), count: 0x1000)
    let split = Int(input.u16())
    // Guest RAM: the input from byte `split` on (the operations come before it).
    let ram = UnsafeBufferPointer(start: data, count: size).suffix(from: min(split, size)).prefix(0x4000)
    try! memory.write(bytes: ram, at: GuestAddress(0))
    try! memory.write(bytes: ram.prefix(0x1000), at: GuestAddress(0x8000))
    let sink = Sink()
    let ports = [VirtioConsole.Port(name: nil, output: { sink.bytes += $0.count }),
                 VirtioConsole.Port(name: "fuzz", output: { sink.bytes += $0.count })]
    let device = VirtioDevice(model: VirtioConsole(ports: ports, size: (80, 25)), memory: memory, log: { _ in })
    let transport = try! VirtioPCITransport(device: device, interrupts: PCIInterruptWiring(
        msi: { vector, _ in sink.vectors.append(vector) }, intx: { _ in }))
    let bridge = PCIHostBridge(window: window)
    try! bridge.attach(transport, slot: 1)
    try! bridge.assignBARs()
    let mmio = bridge.memoryWindow()
    let tableSize = device.queueCount + 1

    func bar(_ index: Int) -> UInt64 { transport.pciFunction.barAddress(index) ?? window.base }
    var steps = 0
    while input.position < min(split, size) && steps < 512 {
        steps += 1
        let op = input.u8()
        let size = input.accessSize()
        switch op & 7 {
        case 0: // CONFIG_ADDRESS: mostly our function, any register
            let slot = op & 0x80 != 0 ? UInt32(input.u8() & 0x1F) : 1
            bridge.write(offset: 0, size: 4, value: UInt64(0x8000_0000 | slot << 11 | UInt32(input.u8())))
        case 1:
            bridge.write(offset: 4 + UInt64(op >> 6), size: size, value: UInt64(input.u32()))
        case 2:
            let value = bridge.read(offset: UInt64(op >> 5), size: size)
            if size < 8 { require(value >> (8 * UInt64(size)) == 0, "a port read wider than its access") }
        case 3:
            mmio.write(offset: bar(0) &- window.base &+ UInt64(input.u16() & 0x3FFF), size: size, value: input.u64())
        case 4:
            _ = mmio.read(offset: bar(0) &- window.base &+ UInt64(input.u16() & 0x3FFF), size: size)
        case 5:
            mmio.write(offset: bar(1) &- window.base &+ UInt64(input.u16() & 0xFFF), size: size, value: input.u64())
        case 6:
            _ = mmio.read(offset: bar(1) &- window.base &+ UInt64(input.u16() & 0xFFF), size: size)
        default:
            switch op >> 3 & 3 {
            case 0: device.enqueueInput(port: Int(op >> 5 & 1), [op, 0x0A])
            case 1: mmio.write(offset: UInt64(input.u32()), size: size, value: input.u64())
            case 2: _ = mmio.read(offset: UInt64(input.u32()), size: size)
            default:
                if op & 0x80 != 0 {
                    bridge.reset()
                } else if let msix = transport.pciFunction.msixCapabilityOffset {
                    // MSI-X enable (message control bit 15) flipped through config space, as a driver does.
                    let slot = UInt32(1) << 11
                    bridge.write(offset: 0, size: 4, value: UInt64(0x8000_0000 | slot | UInt32(msix & 0xFC)))
                    let control = bridge.read(offset: 4 + UInt64((msix + 2) & 3), size: 2)
                    bridge.write(offset: 4 + UInt64((msix + 2) & 3), size: 2, value: control ^ 0x8000)
                }
            }
        }
    }
    trace("virtio-pci: \(steps) operations, status 0x\(String(device.status, radix: 16)), \(sink.bytes) bytes out, MSI vectors \(sink.vectors), MSI-X \(transport.pciFunction.isMSIXEnabled ? "on" : "off"), INTx \(transport.pciFunction.intxLevel)")
    for vector in sink.vectors { require(vector >= 0 && vector < tableSize, "an MSI for vector \(vector) of a \(tableSize)-entry table") }
    return 0
}
