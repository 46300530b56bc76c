//! The seeds' scenario on the forwarding core, in memory: VMs on access VLANs 100 and 200,
//! a router VM on a trunk carrying both, a DHCP broadcast that reaches only its VLAN, a
//! learned unicast that reaches exactly one port, a VLAN-hopping attempt, and two "hosts"
//! (two switch instances) joined by a tagged trunk. Prints what each port received.
//!
//! Run: `make demo` (or `cargo run --release -p vswitch-datapath --example seeds`).

use datapath::fdb::FdbConfig;
use datapath::mem::{MemPortConfig, MemSwitch};
use datapath::topology::{PortConfig, PortId, Topology};
use datapath::wire::{EthernetFrame, EthernetRepr, MacAddr, Tci};
use datapath::DropReason;

fn mac(last: u8) -> MacAddr {
    MacAddr([0x02, 0, 0, 0, 0, last])
}

fn frame(dst: MacAddr, src: MacAddr, vid: Option<u16>, what: &str) -> Vec<u8> {
    let mut payload = what.as_bytes().to_vec();
    payload.resize(46.max(payload.len()), 0);
    EthernetRepr {
        dst,
        src,
        tag: vid.map(|v| Tci::new(0, false, v)),
        ethertype: 0x0800,
    }
    .to_frame(&payload)
}

fn switch(ports: &[(&str, &str)]) -> MemSwitch {
    let mut b = Topology::builder();
    for (i, (name, vlan)) in ports.iter().enumerate() {
        let vlan = vlan.parse().unwrap_or_else(|e| panic!("port {name}: {e}"));
        b.add_port(i, PortConfig::new(*name, vlan))
            .unwrap_or_else(|e| panic!("port {name}: {e}"));
    }
    MemSwitch::new(
        b.build(),
        FdbConfig::default(),
        MemPortConfig::default(),
        32,
    )
}

fn pid(sw: &MemSwitch, name: &str) -> PortId {
    sw.topology()
        .port_by_name(name)
        .unwrap_or_else(|| panic!("no port {name}"))
}

fn describe(f: &[u8]) -> String {
    match EthernetFrame::new_checked(f) {
        Ok(v) => match v.tag() {
            Some(t) => format!("tagged vid {} (pcp {})", t.vid(), t.pcp()),
            None => "untagged".to_string(),
        },
        Err(e) => format!("malformed: {e}"),
    }
}

/// Injects one frame, forwards it, and prints where it went. Returns the receivers.
fn step(sw: &mut MemSwitch, title: &str, ingress: &str, f: &[u8]) -> Vec<String> {
    println!("\n== {title}");
    let p = pid(sw, ingress);
    let cfg = sw
        .topology()
        .port(p)
        .map(|c| c.vlan.to_string())
        .unwrap_or_default();
    println!("   in : {ingress:<8} ({cfg}), frame {}", describe(f));
    sw.inject(p, f).expect("inject");
    sw.run();
    let verdict = sw.pipeline().verdicts().first().copied();
    let names: Vec<(PortId, String)> = sw
        .topology()
        .iter()
        .map(|(id, c)| (id, c.name.clone()))
        .collect();
    let mut got = Vec::new();
    for (id, name) in names {
        for out in sw.take_tx(id) {
            println!("   out: {name:<8} {}", describe(&out));
            got.push(name.clone());
        }
    }
    if got.is_empty() {
        println!("   out: (none)");
    }
    println!("   verdict: {verdict:?}");
    got
}

fn main() {
    println!("vswitch seeds scenario (in-memory forwarding core)");
    let mut host_a = switch(&[
        ("vm1", "access 100"),
        ("vm2", "access 100"),
        ("vm3", "access 200"),
        ("router", "trunk 100,200"),
        ("uplink", "trunk 100,200"),
    ]);
    let (vm1, vm2, vm3, router) = (mac(1), mac(2), mac(3), mac(0xfe));

    let got = step(
        &mut host_a,
        "vm1 broadcasts a DHCPDISCOVER in VLAN 100",
        "vm1",
        &frame(MacAddr::BROADCAST, vm1, None, "DHCPDISCOVER"),
    );
    assert!(
        !got.contains(&"vm3".to_string()),
        "broadcast leaked into VLAN 200"
    );

    let got = step(
        &mut host_a,
        "router answers vm1 (DHCPOFFER, tagged 100): learned unicast, one port",
        "router",
        &frame(vm1, router, Some(100), "DHCPOFFER"),
    );
    assert_eq!(got, vec!["vm1".to_string()]);

    step(
        &mut host_a,
        "vm3 broadcasts an ARP request in VLAN 200",
        "vm3",
        &frame(MacAddr::BROADCAST, vm3, None, "ARP who-has"),
    );

    step(
        &mut host_a,
        "vm2 sends to vm1 (known): exactly one port",
        "vm2",
        &frame(vm1, vm2, None, "hello vm1"),
    );

    step(
        &mut host_a,
        "vm2 tries VLAN hopping with a frame tagged 200",
        "vm2",
        &frame(vm3, vm2, Some(200), "hop"),
    );

    // Two hosts joined by one tagged trunk ("cable"): host B has vm4 in VLAN 100.
    println!("\n== two hosts joined by a trunk: host A uplink <-> host B uplink");
    let mut host_b = switch(&[
        ("vm4", "access 100"),
        ("vm5", "access 200"),
        ("uplink", "trunk 100,200"),
    ]);
    let vm4 = mac(4);
    let f = frame(vm4, vm1, None, "vm1 -> vm4 across hosts");
    let a_vm1 = pid(&host_a, "vm1");
    host_a.inject(a_vm1, &f).expect("inject");
    host_a.run();
    let a_up = pid(&host_a, "uplink");
    let b_up = pid(&host_b, "uplink");
    let on_cable = host_a.take_tx(a_up);
    for other in ["vm2", "router"] {
        let id = pid(&host_a, other);
        host_a.take_tx(id);
    }
    for c in &on_cable {
        println!("   cable A->B: {}", describe(c));
        host_b.inject(b_up, c).expect("inject");
    }
    host_b.run();
    let b_vm4 = pid(&host_b, "vm4");
    let b_vm5 = pid(&host_b, "vm5");
    let at_vm4 = host_b.take_tx(b_vm4);
    let at_vm5 = host_b.take_tx(b_vm5);
    println!(
        "   host B: vm4 received {} frame(s) ({}), vm5 (VLAN 200) received {}",
        at_vm4.len(),
        at_vm4.first().map(|f| describe(f)).unwrap_or_default(),
        at_vm5.len()
    );
    assert_eq!(at_vm4.len(), 1);
    assert!(at_vm5.is_empty());

    println!("\n== host A port counters");
    println!(
        "   {:<8} {:>6} {:>6} {:>6}  drops",
        "port", "rx", "tx", "flood"
    );
    for (id, c) in host_a.topology().iter() {
        let k = host_a.pipeline().counters(id);
        let drops: Vec<String> = k
            .drop_counts()
            .map(|(r, n)| format!("{}={n}", r.name()))
            .collect();
        println!(
            "   {:<8} {:>6} {:>6} {:>6}  {}",
            c.name,
            k.rx_packets,
            k.tx_packets,
            k.rx_flooded,
            drops.join(" ")
        );
    }
    let f = host_a.pipeline().fdb();
    println!("\n== host A FDB ({} entries)", f.len());
    let mut entries: Vec<_> = f.entries(0).collect();
    entries.sort_by_key(|e| (e.vid, e.mac));
    for e in entries {
        let name = host_a
            .topology()
            .port(e.port)
            .map(|c| c.name.as_str())
            .unwrap_or("?");
        println!("   vlan {:>4}  {}  {name}", e.vid, e.mac);
    }
    let hop = host_a
        .pipeline()
        .counters(pid(&host_a, "vm2"))
        .drops(DropReason::TaggedOnAccess);
    assert_eq!(hop, 1);
    println!("\nseeds scenario OK");
}
