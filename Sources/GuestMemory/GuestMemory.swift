// GuestMemory: the guest's RAM as host mappings, behind a bounds-checked API.
//
// Each region is an anonymous private mapping (MAP_NORESERVE: pages cost host memory only once the guest
// or a loader touches them) at a guest-physical base. Loaders, boot encoders and virtio read and write
// through typed little-endian accessors that check every access against the regions and throw instead of
// trapping; no caller outside this file sees a raw host pointer except through `withHostPointer`, which
// KVM needs to register the memory slots.
import CKVM
import Glibc

public enum GuestMemoryError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The access [address, address + length) is not wholly inside one RAM region.
    case outOfBounds(address: GuestAddress, length: UInt64)
    /// Region layout problem (zero size, overlap, wrap-around).
    case invalidRegion(String)
    /// The host refused to map the memory.
    case mapFailed(size: UInt64, errno: Int32)

    public var description: String {
        switch self {
        case let .outOfBounds(address, length):
            "guest memory access of \(length) bytes at \(address) is outside guest RAM"
        case let .invalidRegion(why):
            "invalid guest memory region: \(why)"
        case let .mapFailed(size, errno):
            "cannot map \(size >> 20) MiB of guest memory: \(String(cString: strerror(errno))) (try a smaller --memory)"
        }
    }
}

/// One contiguous block of guest RAM.
public final class GuestMemoryRegion: @unchecked Sendable {
    public let range: AddressRange
    // SAFETY: `host` is the start of a private anonymous mapping of `range.length` bytes owned by this
    // object and unmapped only in deinit; every access goes through GuestMemory's bounds checks.
    let host: UnsafeMutableRawPointer

    init(base: GuestAddress, size: UInt64) throws(GuestMemoryError) {
        guard let range = AddressRange(base: base, length: size) else {
            throw .invalidRegion("region at \(base) of \(size) bytes is empty or wraps around")
        }
        guard size <= UInt64(Int.max) else { throw .mapFailed(size: size, errno: ENOMEM) }
        var error: Int32 = 0
        guard let pointer = ckvm_mmap(Int(size), -1, &error) else { throw .mapFailed(size: size, errno: error) }
        // No MADV_HUGEPAGE: a 2 MiB huge page per touched region would cost more host memory than the tiny guests use.
        self.range = range
        self.host = pointer
    }

    /// A region mapped from `fd` at `offset`, MAP_PRIVATE: the file's pages load on first touch and the
    /// guest's writes stay in this process (a snapshot restore; many restores share the file's page cache).
    init(base: GuestAddress, size: UInt64, fileDescriptor fd: Int32, offset: UInt64) throws(GuestMemoryError) {
        guard let range = AddressRange(base: base, length: size) else {
            throw .invalidRegion("region at \(base) of \(size) bytes is empty or wraps around")
        }
        guard size <= UInt64(Int.max), offset <= UInt64(Int64.max) else { throw .mapFailed(size: size, errno: ENOMEM) }
        var error: Int32 = 0
        guard let pointer = ckvm_mmap_file_private(Int(size), fd, Int64(offset), &error) else { throw .mapFailed(size: size, errno: error) }
        self.range = range
        self.host = pointer
    }

    deinit { _ = ckvm_munmap(host, Int(range.length)) }
}

public final class GuestMemory: @unchecked Sendable {
    public let regions: [GuestMemoryRegion]

    /// Maps one region per (base, size) pair; regions must not overlap.
    public init(layout: [(base: GuestAddress, size: UInt64)]) throws(GuestMemoryError) {
        var regions: [GuestMemoryRegion] = []
        for item in layout.sorted(by: { $0.base < $1.base }) {
            let region = try GuestMemoryRegion(base: item.base, size: item.size)
            if let previous = regions.last, previous.range.overlaps(region.range) {
                throw .invalidRegion("\(region.range) overlaps \(previous.range)")
            }
            regions.append(region)
        }
        self.regions = regions
    }

    /// Maps each region of `layout` from `fd` at its file offset, copy-on-write (see GuestMemoryRegion).
    public init(mappingFile fd: Int32, layout: [(base: GuestAddress, size: UInt64, fileOffset: UInt64)]) throws(GuestMemoryError) {
        var regions: [GuestMemoryRegion] = []
        for item in layout.sorted(by: { $0.base < $1.base }) {
            let region = try GuestMemoryRegion(base: item.base, size: item.size, fileDescriptor: fd, offset: item.fileOffset)
            if let previous = regions.last, previous.range.overlaps(region.range) {
                throw .invalidRegion("\(region.range) overlaps \(previous.range)")
            }
            regions.append(region)
        }
        self.regions = regions
    }

    /// Total bytes of RAM.
    public var totalSize: UInt64 { regions.reduce(0) { $0 + $1.range.length } }

    /// True when [address, address + length) is RAM.
    public func contains(_ address: GuestAddress, length: UInt64 = 1) -> Bool {
        region(for: address, length: length) != nil
    }

    private func region(for address: GuestAddress, length: UInt64) -> GuestMemoryRegion? {
        for region in regions where region.range.contains(address, length: length) { return region }
        return nil
    }

    /// Runs `body` with a host pointer to `length` bytes at `address`, after checking the whole span.
    // SAFETY: the pointer is valid for `length` bytes while `body` runs; the region outlives the call.
    public func withHostPointer<R>(at address: GuestAddress, length: UInt64,
                                   _ body: (UnsafeMutableRawBufferPointer) throws -> R) throws -> R {
        guard let region = region(for: address, length: length) else {
            throw GuestMemoryError.outOfBounds(address: address, length: length)
        }
        let offset = Int(address.rawValue - region.range.base.rawValue)
        return try body(UnsafeMutableRawBufferPointer(start: region.host + offset, count: Int(length)))
    }

    /// The host address backing a region, for KVM_SET_USER_MEMORY_REGION only.
    public func hostAddress(of region: GuestMemoryRegion) -> UnsafeMutableRawPointer { region.host }

    /// Bytes of guest RAM that are resident in host memory now: the pages the loaders or the guest touched
    /// (mincore(2) over each region's mapping). Nil if mincore fails.
    public func residentBytes() -> UInt64? {
        let page = UInt64(sysconf(Int32(_SC_PAGESIZE)))
        guard page > 0 else { return nil }
        var total: UInt64 = 0
        for region in regions {
            let pages = Int((region.range.length + page - 1) / page)
            var vector = [UInt8](repeating: 0, count: pages)
            // SAFETY: region.host is the page-aligned start of a live mapping of range.length bytes.
            guard mincore(region.host, Int(region.range.length), &vector) == 0 else { return nil }
            total += UInt64(vector.reduce(0) { $0 + Int($1 & 1) }) * page
        }
        return total
    }

    // MARK: Typed little-endian access

    public func read<T: FixedWidthInteger>(_: T.Type = T.self, at address: GuestAddress) throws(GuestMemoryError) -> T {
        guard let region = region(for: address, length: UInt64(MemoryLayout<T>.size)) else {
            throw .outOfBounds(address: address, length: UInt64(MemoryLayout<T>.size))
        }
        let offset = Int(address.rawValue - region.range.base.rawValue)
        return T(littleEndian: region.host.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    public func write<T: FixedWidthInteger>(_ value: T, at address: GuestAddress) throws(GuestMemoryError) {
        guard let region = region(for: address, length: UInt64(MemoryLayout<T>.size)) else {
            throw .outOfBounds(address: address, length: UInt64(MemoryLayout<T>.size))
        }
        let offset = Int(address.rawValue - region.range.base.rawValue)
        region.host.storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self)
    }

    /// Copies `bytes` into guest memory at `address`.
    public func write<C: Collection<UInt8>>(bytes: C, at address: GuestAddress) throws(GuestMemoryError) {
        let length = UInt64(bytes.count)
        if length == 0 { return }
        guard let region = region(for: address, length: length) else {
            throw .outOfBounds(address: address, length: length)
        }
        let offset = Int(address.rawValue - region.range.base.rawValue)
        let target = UnsafeMutableRawBufferPointer(start: region.host + offset, count: Int(length))
        target.copyBytes(from: bytes)
    }

    /// Reads `count` bytes at `address`.
    public func readBytes(at address: GuestAddress, count: Int) throws(GuestMemoryError) -> [UInt8] {
        if count == 0 { return [] }
        guard count > 0, let region = region(for: address, length: UInt64(count)) else {
            throw .outOfBounds(address: address, length: UInt64(max(count, 0)))
        }
        let offset = Int(address.rawValue - region.range.base.rawValue)
        return [UInt8](UnsafeRawBufferPointer(start: region.host + offset, count: count))
    }

    /// Fills `count` bytes at `address` with zero.
    public func zero(at address: GuestAddress, count: UInt64) throws(GuestMemoryError) {
        if count == 0 { return }
        guard let region = region(for: address, length: count) else { throw .outOfBounds(address: address, length: count) }
        let offset = Int(address.rawValue - region.range.base.rawValue)
        (region.host + offset).initializeMemory(as: UInt8.self, repeating: 0, count: Int(count))
    }
}
