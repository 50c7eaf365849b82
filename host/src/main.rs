fn main() {
    let elf = vigil::guard_image::production();
    let t = std::time::Instant::now();
    let mut vm = vigil::vmm::GuardVm::boot_elf(elf, vigil::vmm::VmConfig{deadline: std::time::Duration::from_millis(300), ..Default::default()}).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    println!("exits {} sleeps {}", vm.exits(), vm.sleeps());
    let r = vm.ping(b"hi");
    println!("{:?} {:?}", t.elapsed(), r);
    println!("exits {} sleeps {}", vm.exits(), vm.sleeps());
}
