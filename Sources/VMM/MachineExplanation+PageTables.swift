// MachineExplanation+PageTables: a summary of the page tables CR3 points at, walked in guest memory the way
// the CPU walks them (Intel SDM Vol. 3A §4.5, 4-level paging: PML4 → PDPT → PD → PT; a PS bit in a PDPT or
// PD entry ends the walk with a 1 GiB or 2 MiB page). The walk collects which tables exist at each level
// and merges the mappings into runs of virtual → physical ranges with the same page size and rights.
// With paging off at entry (multiboot, PVH) it says who builds the tables instead.
import GuestMemory

extension MachineExplanation {
    public struct PageTableSummary: Sendable {
        public struct Level: Sendable, Equatable {
            /// "PML4", "PDPT", "PD", "PT".
            public var name: String
            /// Guest-physical addresses of the tables at this level.
            public var tables: [UInt64]
            /// Present entries across those tables.
            public var presentEntries: Int
        }

        public struct Mapping: Sendable, Equatable {
            public var virtualBase: UInt64
            public var physicalBase: UInt64
            public var length: UInt64
            public var pageSize: UInt64
            public var writable: Bool
            public var user: Bool
        }

        /// False when CR0.PG is clear at entry.
        public var enabled: Bool
        public var root: UInt64
        public var levels: [Level]
        public var mappings: [Mapping]
        /// Why there are none, or who replaces these.
        public var note: String

        /// The most table pages the walk visits, so a corrupt table cannot make `explain` walk forever.
        static let tableLimit = 4096

        init(memory: GuestMemory, entry: EntryState, format: KernelFormat) throws(GuestMemoryError) {
            root = entry.cr3 & ~0xFFF
            guard entry.paging else {
                enabled = false
                levels = []
                mappings = []
                switch format {
                case .multiboot where !entry.protectedMode:
                    note = "paging is off: the vCPU starts in real mode; the firmware enters the kernel in 32-bit protected mode with paging still off (Multiboot §3.2), and the kernel builds its own tables (guest/tiny/entry.S)"
                case .multiboot:
                    note = "paging is off at entry (Multiboot §3.2); the VMM wrote no page tables. The kernel builds its own: the tiny guests map their first GiB and switch to long mode in guest/tiny/entry.S"
                case .pvh:
                    note = "paging is off at entry (PVH: 32-bit protected mode); the VMM wrote no page tables. Linux builds its own in pvh_start_xen (arch/x86/platform/pvh/head.S) before entering long mode"
                case .bzImage:
                    note = "paging is off at entry"
                }
                return
            }
            enabled = true
            guard entry.longMode, entry.cr4 & (1 << 5) != 0 else {
                levels = []
                mappings = []
                note = "paging is on but not 4-level (long mode with PAE): not summarised"
                return
            }
            var levels = [Level(name: "PML4", tables: [root], presentEntries: 0), Level(name: "PDPT", tables: [], presentEntries: 0),
                          Level(name: "PD", tables: [], presentEntries: 0), Level(name: "PT", tables: [], presentEntries: 0)]
            var mappings: [Mapping] = []
            var visited = 0
            let addressMask: UInt64 = 0x000F_FFFF_FFFF_F000
            // (level index, table address, virtual base covered by the table, inherited writable, inherited user)
            var stack: [(Int, UInt64, UInt64, Bool, Bool)] = [(0, root, 0, true, true)]
            while let next = stack.popLast() {
                let (level, table, virtualBase, parentWritable, parentUser) = next
                visited += 1
                if visited > Self.tableLimit { break }
                let entries = try memory.readBytes(at: GuestAddress(table), count: 4096)
                let shift = UInt64(39 - 9 * level)
                var children: [(Int, UInt64, UInt64, Bool, Bool)] = []
                for i in 0..<512 {
                    var e: UInt64 = 0
                    for b in 0..<8 { e |= UInt64(entries[i * 8 + b]) << (8 * UInt64(b)) }
                    guard e & 1 != 0 else { continue }
                    levels[level].presentEntries += 1
                    var virtual = virtualBase | UInt64(i) << shift
                    if level == 0 && i >= 256 { virtual |= 0xFFFF_0000_0000_0000 } // canonical upper half
                    let writable = parentWritable && e & 2 != 0
                    let user = parentUser && e & 4 != 0
                    let isLeaf = level == 3 || (level >= 1 && e & (1 << 7) != 0)
                    if isLeaf {
                        let size = UInt64(1) << shift
                        let physical = e & addressMask & ~(size - 1)
                        if var last = mappings.last, last.virtualBase &+ last.length == virtual,
                           last.physicalBase &+ last.length == physical, last.pageSize == size,
                           last.writable == writable, last.user == user {
                            last.length += size
                            mappings[mappings.count - 1] = last
                        } else {
                            mappings.append(Mapping(virtualBase: virtual, physicalBase: physical, length: size, pageSize: size,
                                                    writable: writable, user: user))
                        }
                    } else {
                        let child = e & addressMask
                        levels[level + 1].tables.append(child)
                        children.append((level + 1, child, virtual, writable, user))
                    }
                }
                // Depth first, in address order: push the children in reverse.
                stack += children.reversed()
            }
            self.levels = levels.filter { !$0.tables.isEmpty }
            self.mappings = mappings
            note = visited > Self.tableLimit ? "stopped after \(Self.tableLimit) tables" : "the VMM's identity map (X86Boot/PageTables.swift); startup_64 replaces it with the kernel's own tables"
        }
    }
}
