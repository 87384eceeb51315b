// Page walks in every paging mode, over page tables built in a dictionary.
import GDBRemote
import Testing

struct PageWalkTests {
    /// Guest-physical memory as 8-byte words (4-byte reads take the low half of an aligned word).
    final class Tables {
        var words: [UInt64: UInt64] = [:]
        func read(_ address: UInt64, _ size: Int) -> UInt64? {
            if size == 8 { return words[address] }
            guard let word = words[address & ~7] else { return nil }
            return address & 4 != 0 ? word >> 32 : word & 0xFFFF_FFFF
        }
        func set32(_ address: UInt64, _ value: UInt32) {
            let word = words[address & ~7] ?? 0
            words[address & ~7] = address & 4 != 0 ? (word & 0xFFFF_FFFF) | UInt64(value) << 32 : (word & ~0xFFFF_FFFF) | UInt64(value)
        }
    }

    let longMode = PagingRegisters(cr0: 0x8000_0011, cr3: 0x1000, cr4: 0x20, efer: 0x500)

    @Test func pagingOffIsTheIdentityBelow4GiB() throws {
        let r = PagingRegisters(cr0: 0x11, cr3: 0, cr4: 0, efer: 0)
        #expect(PagingMode(r) == .off)
        let t = try PageWalk.translate(0xFFFF_FFF0, r) { _, _ in nil }.get()
        #expect(t.physical == 0xFFFF_FFF0)
        #expect(PageWalk.translate(0xFFFF_FFFF_8100_0000, r) { _, _ in nil } == .failure(.beyond32Bits(0xFFFF_FFFF_8100_0000)))
    }

    @Test func fourLevelWalksToA4KiBPageA2MiBPageAndA1GiBPage() throws {
        let m = Tables()
        // 0xffffffff81234567: PML4 index 511, PDPT index 510, PD index 9, PT index 0x34.
        m.words[0x1000 + 511 * 8] = 0x2000 | 3
        m.words[0x2000 + 510 * 8] = 0x3000 | 3
        m.words[0x3000 + 9 * 8] = 0x4000 | 3
        m.words[0x4000 + 0x34 * 8] = 0x7654_3000 | 3
        let t = try PageWalk.translate(0xFFFF_FFFF_8123_4567, longMode, read: m.read).get()
        #expect(t.physical == 0x7654_3567)
        #expect(t.pageSize == 4096)
        #expect(t.steps.map(\.level) == ["PML4E", "PDPTE", "PDE", "PTE"])
        #expect(t.writable && !t.user)
        // A 2 MiB page in the PD, a 1 GiB page in the PDPT (user pages).
        m.words[0x3000 + 10 * 8] = 0x4060_0000 | 0x87
        #expect(try PageWalk.translate(0xFFFF_FFFF_8145_6789, longMode, read: m.read).get().physical == 0x4065_6789)
        m.words[0x1000] = 0x5000 | 7
        m.words[0x5000 + 1 * 8] = 0x8000_0000 | 0x87
        let huge = try PageWalk.translate(0x4123_4567, longMode, read: m.read).get()
        #expect(huge.physical == 0x8123_4567 && huge.pageSize == 1 << 30 && huge.user)
    }

    @Test func unmappedNonCanonicalAndUnreadableAddressesFail() {
        let m = Tables()
        m.words[0x1000] = 0x2000 | 3
        m.words[0x2000] = 0
        #expect(PageWalk.translate(0x0000_8000_0000_0000, longMode, read: m.read) == .failure(.nonCanonical(0x0000_8000_0000_0000)))
        guard case let .failure(.notPresent(level, _)) = PageWalk.translate(0x1000, longMode, read: m.read) else {
            Issue.record("expected a not-present fault"); return
        }
        #expect(level == "PDPTE")
        m.words[0x2000] = 0xDEAD_0000 | 3
        #expect(PageWalk.translate(0x1000, longMode, read: m.read) == .failure(.unreadableTable(level: "PDE", address: 0xDEAD_0000)))
    }

    @Test func fiveLevelPagingAddsAPML5() throws {
        let m = Tables()
        let r = PagingRegisters(cr0: 0x8000_0011, cr3: 0x1000, cr4: 0x20 | 0x1000, efer: 0x500)
        #expect(PagingMode(r) == .fiveLevel)
        m.words[0x1000 + 1 * 8] = 0x2000 | 3      // PML5 index 1 (bit 48)
        m.words[0x2000] = 0x3000 | 3
        m.words[0x3000] = 0x4000 | 3
        m.words[0x4000] = 0x20_0000 | 0x83          // 2 MiB page
        #expect(try PageWalk.translate(0x0001_0000_0001_2345, r, read: m.read).get().physical == 0x21_2345)
        // Canonical with 57 bits, not with 48.
        #expect(PageWalk.translate(0x0100_0000_0000_0000, r, read: m.read) == .failure(.nonCanonical(0x0100_0000_0000_0000)))
    }

    @Test func paeUsesFourPDPTEsFromCR3() throws {
        let m = Tables()
        let r = PagingRegisters(cr0: 0x8000_0011, cr3: 0x1020, cr4: 0x20, efer: 0)
        #expect(PagingMode(r) == .pae)
        m.words[0x1020 + 3 * 8] = 0x2000 | 1       // PDPTE 3: 0xc0000000-
        m.words[0x2000 + 1 * 8] = 0x3000 | 3
        m.words[0x3000 + 0x10 * 8] = 0x9000 | 3
        #expect(try PageWalk.translate(0xC021_0ABC, r, read: m.read).get().physical == 0x9ABC)
    }

    @Test func legacy32BitPagingWith4KiBAnd4MiBPages() throws {
        let m = Tables()
        let r = PagingRegisters(cr0: 0x8000_0011, cr3: 0x1000, cr4: 0x10, efer: 0)
        #expect(PagingMode(r) == .legacy)
        m.set32(0x1000 + 0x300 * 4, 0x2000 | 3)            // 0xc0000000: a page table
        m.set32(0x2000 + 5 * 4, 0x0007_7000 | 3)
        #expect(try PageWalk.translate(0xC000_5123, r, read: m.read).get().physical == 0x7_7123)
        m.set32(0x1000 + 1 * 4, 0x0080_0000 | 0x83 | (1 << 13))  // 4 MiB page, PSE-36 bit 32
        let big = try PageWalk.translate(0x0040_1234, r, read: m.read).get()
        #expect(big.physical == 0x1_0080_1234 && big.pageSize == 4 << 20)
        #expect(PageWalk.translate(0x1_0000_0000, r, read: m.read) == .failure(.beyond32Bits(0x1_0000_0000)))
    }
}
