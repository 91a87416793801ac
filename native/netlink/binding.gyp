# Shoal's netlink addon (see shoal_netlink.cc). Built by scripts/build-native.sh against the machine's
# own Node headers (node-gyp --nodedir=/usr); the result is copied to native/build/shoal_netlink.node.
{
  "targets": [
    {
      "target_name": "shoal_netlink",
      "sources": ["shoal_netlink.cc", "nl.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "_GNU_SOURCE"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"]
    }
  ]
}
