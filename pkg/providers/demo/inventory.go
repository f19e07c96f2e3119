package demo

// DemoInventory is the distributed_hosts.yaml of the demo cluster: one host
// per instance seeded by StartFakes, linked by its provider's *_id field
// (and named like the instance), three Hetzner voters, Lambda marked retired
// and the Nebius project of the fake. The coordinator's demo mode parses it
// with config.Parse; TestDemoInventoryMatchesSeeds keeps it in step with the
// seeds. Addresses are documentation ranges; IDs are made up. Each
// persistent host pins ssh_host_key to the key internal/demosim reports
// for it (TestDemoInventoryPinsSimulatedHostKeys), so demo syncs route.
const DemoInventory = `# ringmesh demo inventory (pkg/providers/demo): every host is an instance
# seeded in the cloud fakes. Nothing here is real.
cluster_name: ringmesh-demo
p2p_voters: [hetzner-cpu1, hetzner-cpu2, hetzner-cpu3]

providers:
  lambda:
    retired: true
    note: demo - listed for reference, every mutation is refused
  nebius:
    project: project-e00demo

# Daily caps per currency (USD and EUR never added), shown by meshctl cost.
budget:
  daily: {USD: 50, EUR: 5}
  providers:
    vast: {USD: 10}

hosts:
  hetzner-cpu1:
    provider: hetzner
    hetzner_id: "41000001"
    ssh_host: 203.0.113.10
    ssh_user: root
    ssh_host_key: "SHA256:fex3kZnWcH2R5LPjKj9w4uagB4MxJV/k7/0Mu2Wr+N8"
    gpu: none
    cpus: 8
    memory_gb: 32
    role: coordinator
    status: ready
    region: fsn1
  hetzner-cpu2:
    provider: hetzner
    hetzner_id: "41000002"
    ssh_host: 203.0.113.11
    ssh_user: root
    ssh_host_key: "SHA256:/rKLhzK3EOn2TxrpfO0DqE+5hhXMXeTKNlf4syPlNd8"
    gpu: none
    cpus: 8
    memory_gb: 32
    role: coordinator
    status: ready
    region: nbg1
  hetzner-cpu3:
    provider: hetzner
    hetzner_id: "41000003"
    ssh_host: 203.0.113.12
    ssh_user: root
    ssh_host_key: "SHA256:C4xJQ4FOlLy77V3R4CPo+OK3+93Sm1nYmb5PysTm2G4"
    gpu: none
    cpus: 8
    memory_gb: 32
    role: coordinator
    status: ready
    region: hel1

  vast-29129529:
    provider: vast
    vast_instance_id: "29129529"
    ssh_host: ssh6.vast.ai
    ssh_port: 19528
    ssh_user: root
    gpu: RTX 5090
    role: gpu_selfplay
    status: ready
    is_ephemeral: true
  vast-29129530:
    provider: vast
    vast_instance_id: "29129530"
    ssh_host: ssh2.vast.ai
    ssh_port: 23110
    ssh_user: root
    gpu: RTX 3090
    role: gpu_selfplay
    status: ready
    is_ephemeral: true
  vast-29129531:
    provider: vast
    vast_instance_id: "29129531"
    ssh_host: ssh4.vast.ai
    ssh_port: 31450
    ssh_user: root
    gpu: RTX 5090
    role: gpu_selfplay
    status: ready
    is_ephemeral: true
  vast-12345678:
    provider: vast
    vast_instance_id: "12345678"
    ssh_host: ssh0.vast.ai
    ssh_port: 12345
    ssh_user: root
    ringrift_path: /workspace/ringrift/ai-service
    gpu: 2x RTX 4090
    gpu_vram_gb: 48
    role: gpu_selfplay
    status: ready
    is_ephemeral: true
    is_container: true

  runpod-a100-1:
    provider: runpod
    runpod_id: xedezhzb9la3ye
    ssh_host: 203.0.113.50
    ssh_port: 22041
    ssh_user: root
    ssh_host_key: "SHA256:+oddvEq9LttwjaHLLybBnTSY/cGawoKn2TNSAs66jAE"
    gpu: A100 80GB
    role: gpu_selfplay
    status: ready
  runpod-spot-1:
    provider: runpod
    runpod_id: spot7k2m4q9wzz
    ssh_host: 203.0.113.78
    ssh_port: 34512
    ssh_user: root
    gpu: RTX 4090
    role: gpu_selfplay
    status: ready
    is_ephemeral: true

  lambda-gh200-1:
    provider: lambda
    lambda_id: 0920582c7ff041399e34823a0be62549
    ssh_host: 198.51.100.2
    ssh_user: ubuntu
    gpu: GH200 (96 GB)
    gpu_vram_gb: 96
    role: gpu_training_primary
    status: retired
  lambda-a10-1:
    provider: lambda
    lambda_id: 5b1e6c3a9d0f4e2b8c7a6d5e4f3a2b1c
    ssh_host: 198.51.100.3
    ssh_user: ubuntu
    gpu: A10 (24 GB PCIe)
    gpu_vram_gb: 24
    role: gpu_selfplay
    status: retired

  vultr-a100-20gb:
    provider: vultr
    vultr_id: 6f2a9c1e-0000-4000-8000-000000000001
    ssh_host: 192.0.2.30
    ssh_user: root
    ssh_host_key: "SHA256:KvHsjzS+3apPPfm0e8x4ZcjnGMGgiWiiOlIK43KY2P0"
    gpu: A100 20GB (vGPU)
    gpu_vram_gb: 20
    role: gpu_selfplay
    status: ready
    region: ewr

  nebius-h100-1:
    provider: nebius
    nebius_id: computeinstance-e00example0001
    ssh_host: 203.0.113.90
    ssh_user: ubuntu
    ssh_host_key: "SHA256:YagTTDydSm7wBsc4cicOT5AtOcp5XXGfvqu2tW1RZbg"
    gpu: H100 80GB
    gpu_vram_gb: 80
    role: gpu_training_primary
    status: ready
    price_per_hour: 2.95
`
