//! The guard image's entry point. Built by `cargo xtask build-guard`
//! (`cfg(vigil_guest)`) this is the unikernel; built otherwise it only says
//! how to build it.
#![cfg_attr(vigil_guest, no_std, no_main)]

#[cfg(not(vigil_guest))]
fn main() {
    eprintln!("vigil-guard is a bare-metal image: build it with `cargo xtask build-guard --arch x86_64`");
    std::process::exit(2);
}

#[cfg(vigil_guest)]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    vigil_unikernel::runtime::panic(info)
}

/// Rust entry, called by `_start` with the boot info address.
#[cfg(vigil_guest)]
extern "C" fn rust_start(boot_info: usize) -> ! {
    vigil_unikernel::runtime::run(boot_info)
}

/// x86_64 entry at CPL3: `rdi` = boot info. Zero `.bss`, align the stack,
/// call Rust. The host set `rsp` to the top of the stack region.
///
/// # Safety
/// Only the CPU may call this, once, as the image's entry point, in the
/// state docs/guest-abi.md describes.
#[cfg(all(vigil_guest, target_arch = "x86_64"))]
#[unsafe(no_mangle)]
#[unsafe(naked)]
#[unsafe(link_section = ".text._start")]
pub unsafe extern "C" fn _start() -> ! {
    core::arch::naked_asm!(
        "mov r12, rdi",
        "lea rdi, [rip + __bss_start]",
        "lea rcx, [rip + __bss_end]",
        "sub rcx, rdi",
        "xor eax, eax",
        "cld",
        "rep stosb",
        "mov rdi, r12",
        "and rsp, -16",
        "xor ebp, ebp",
        "call {main}",
        "ud2",
        main = sym rust_start,
    )
}

/// aarch64 entry at EL0: `x0` = boot info, `sp` (SP_EL0) = the top of the
/// stack region, the MMU on, FP/SIMD enabled; the VMM set all of that up.
/// Zero `.bss`, call Rust.
///
/// # Safety
/// Only the CPU may call this, once, as the image's entry point, in the
/// state docs/guest-abi.md describes.
#[cfg(all(vigil_guest, target_arch = "aarch64"))]
#[unsafe(no_mangle)]
#[unsafe(naked)]
#[unsafe(link_section = ".text._start")]
pub unsafe extern "C" fn _start() -> ! {
    core::arch::naked_asm!(
        "mov x19, x0",
        "adrp x1, __bss_start",
        "add x1, x1, :lo12:__bss_start",
        "adrp x2, __bss_end",
        "add x2, x2, :lo12:__bss_end",
        "1: cmp x1, x2",
        "b.hs 2f",
        "str xzr, [x1], #8",
        "b 1b",
        "2: mov x0, x19",
        "mov x29, xzr",
        "mov x30, xzr",
        "bl {main}",
        "udf #0",
        main = sym rust_start,
    )
}
