//! Letting go of the program's file pages a process touched once and no longer needs.
//!
//! A resident set counts every page of the program's files a process has mapped in: at start
//! the dynamic loader and the start-up code (argument parsing, TLS handshakes, key
//! generation, joining the cluster) touch megabytes of a large binary, and the kernel maps
//! whole 64 KiB runs around each touched page. Those pages stay counted long after the code
//! they hold last ran. Unmapping the mappings that hold nothing but clean file pages leaves
//! the page cache (and every other process sharing it) untouched; code that runs again reads
//! its pages back from the cache, so what stays resident is what the process actually uses.

use std::fs;

/// The address ranges in `smaps` (the text of `/proc/<pid>/smaps`) that map a file privately
/// and read-only and hold no page of their own: no copy-on-write or anonymous page (a
/// relocated read-only segment has them), nothing swapped. Writable mappings are never
/// listed, nor anything without a file path (heap, stacks, vDSO).
pub fn clean_file_ranges(smaps: &str) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    // The mapping being read: its range and whether it is still a candidate.
    let mut current: Option<(usize, usize, bool)> = None;
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let Some(first) = words.next() else {
            continue;
        };
        let range = first.split_once('-').and_then(|(start, end)| {
            Some((
                usize::from_str_radix(start, 16).ok()?,
                usize::from_str_radix(end, 16).ok()?,
            ))
        });
        if let Some((start, end)) = range {
            if let Some((start, end, true)) = current.take() {
                ranges.push((start, end));
            }
            let permissions = words.next().unwrap_or("");
            let _offset = words.next();
            let _device = words.next();
            let inode = words.next().unwrap_or("0");
            let path = words.next().unwrap_or("");
            let file_backed = inode != "0" && path.starts_with('/');
            let read_only_private = permissions.len() == 4
                && permissions.starts_with('r')
                && permissions.as_bytes()[1] == b'-'
                && permissions.ends_with('p');
            current = Some((start, end, file_backed && read_only_private));
            continue;
        }
        let value = words
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        // A shared dirty page is the page cache's (the file was written lately), not the
        // process's: unmapping it loses nothing.
        if matches!(first, "Private_Dirty:" | "Anonymous:" | "Swap:") && value > 0 {
            if let Some((_, _, candidate)) = current.as_mut() {
                *candidate = false;
            }
        }
    }
    if let Some((start, end, true)) = current {
        ranges.push((start, end));
    }
    ranges
}

/// Unmaps this process's pages of every mapping [`clean_file_ranges`] lists. Safe to call
/// from any thread at any time: those pages are identical to the file's, so a later access
/// reads back exactly what was there. Returns how many mappings were let go.
#[allow(unsafe_code)]
pub fn shed_clean_file_pages() -> usize {
    let Ok(smaps) = fs::read_to_string("/proc/self/smaps") else {
        return 0;
    };
    let ranges = clean_file_ranges(&smaps);
    for &(start, end) in &ranges {
        // SAFETY: the range is a read-only private mapping of a file holding only clean
        // pages (no copy-on-write page, nothing anonymous), and no thread can write to it;
        // MADV_DONTNEED only drops this process's view of page-cache pages, which a later
        // access maps again unchanged.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
        }
    }
    ranges.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d000000000-55d000100000 r--p 00000000 fe:01 1234 /usr/bin/skiff
Rss:                 400 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
Swap:                  0 kB
55d000100000-55d000900000 r-xp 00100000 fe:01 1234 /usr/bin/skiff
Rss:                8000 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
55d000900000-55d000a00000 r--p 00900000 fe:01 1234 /usr/bin/skiff
Rss:                1024 kB
Private_Dirty:       900 kB
Anonymous:           900 kB
55d000a00000-55d000a10000 rw-p 00a00000 fe:01 1234 /usr/bin/skiff
Rss:                  64 kB
Private_Dirty:         0 kB
55d001000000-55d002000000 rw-p 00000000 00:00 0 [heap]
Rss:                4096 kB
Anonymous:          4096 kB
7f0000000000-7f0000010000 r--s 00000000 fe:01 99 /dev/shm/shared
Rss:                  64 kB
7f0000100000-7f0000200000 r-xp 00000000 fe:01 77 /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                 512 kB
Private_Dirty:         0 kB
7f0000300000-7f0000301000 r-xp 00000000 00:00 0 [vdso]
Rss:                   4 kB
7f0000400000-7f0000500000 r--p 00000000 fe:01 55 /usr/lib/locale/C.utf8/LC_CTYPE
Rss:                  12 kB
Swap:                  4 kB
";

    #[test]
    fn only_read_only_private_file_mappings_with_no_page_of_their_own_are_listed() {
        assert_eq!(
            clean_file_ranges(SMAPS),
            vec![
                // The binary's read-only data and its code.
                (0x55d0_0000_0000, 0x55d0_0010_0000),
                (0x55d0_0010_0000, 0x55d0_0090_0000),
                // A library's code, the last candidate before others that are not.
                (0x7f00_0010_0000, 0x7f00_0020_0000),
            ],
            "not the relocated segment (anonymous pages), the writable data, the heap, a \
             shared mapping, the vDSO or a mapping with swapped pages"
        );
    }

    #[test]
    fn a_candidate_that_ends_the_text_is_listed() {
        let smaps = "00400000-00500000 r-xp 00000000 fe:01 1 /bin/x\nRss: 4 kB\n";
        assert_eq!(clean_file_ranges(smaps), vec![(0x40_0000, 0x50_0000)]);
        assert!(clean_file_ranges("").is_empty());
    }

    /// This process's resident pages of files, in KiB.
    fn resident_file_kib() -> u64 {
        fs::read_to_string("/proc/self/status")
            .expect("status")
            .lines()
            .find_map(|line| line.strip_prefix("RssFile:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .expect("RssFile in /proc/self/status")
    }

    #[test]
    fn shedding_lowers_the_resident_file_pages_and_changes_no_data() {
        let kept: Vec<u64> = (0..100_000).collect();
        let before = resident_file_kib();
        let shed = shed_clean_file_pages();
        let after = resident_file_kib();
        assert!(shed > 0, "the test binary maps its code read-only");
        assert!(
            after < before,
            "resident file pages went from {before} KiB to {after} KiB"
        );
        // The heap is untouched, and code runs again from the file.
        assert_eq!(kept.iter().sum::<u64>(), 4_999_950_000);
    }
}
