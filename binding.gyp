{
  "targets": [
    {
      "target_name": "rdma_target",
      "sources": [
        "native/addon.cc",
        "native/cm.cc",
        "native/common.cc",
        "native/cq.cc",
        "native/device.cc",
        "native/mr.cc",
        "native/pd.cc",
        "native/qp.cc",
        "native/sys.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-missing-field-initializers", "-Wno-unused-parameter"],
      "libraries": ["-libverbs", "-lrdmacm"]
    }
  ]
}
