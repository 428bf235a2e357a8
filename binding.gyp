{
  "targets": [
    {
      "target_name": "bulkhead",
      "sources": [
        "<!@(node -p \"require('fs').readdirSync('native/binding').filter(f => f.endsWith('.cc')).map(f => 'native/binding/' + f).join(' ')\")",
        "<!@(node -p \"['kvm', 'devices', 'devices/virtio', 'boot', 'machine', 'xen'].flatMap(d => { try { return require('fs').readdirSync('native/' + d).filter(f => f.endsWith('.c')).map(f => 'native/' + d + '/' + f) } catch { return [] } }).join(' ')\")"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "native/include",
        "native"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_DISABLE_CPP_EXCEPTIONS",
        "NODE_ADDON_API_DISABLE_DEPRECATED"
      ],
      "cflags": ["-Wall", "-Wextra", "-fvisibility=hidden"],
      "cflags_c": ["-std=gnu11", "-Werror=implicit-function-declaration"],
      "cflags_cc": ["-std=c++17"],
      "cflags!": ["-fno-exceptions"],
      "libraries": ["-lpthread", "-ldl"]
    }
  ]
}
