# eBPF part of meshd_sensor: loader (skeleton owner), bpf enforcer, ring-buffer source.
# Included by sensor/CMakeLists.txt; the skeleton target comes from bpf/CMakeLists.txt.
pkg_check_modules(LIBBPF REQUIRED IMPORTED_TARGET libbpf)
find_package(spdlog REQUIRED)

target_sources(meshd_sensor PRIVATE
  bpf_maps.cpp bpf_maps.hpp
  bpf_filter.cpp bpf_filter.hpp
  bpf_loader.cpp bpf_loader.hpp
  bpf_enforcer.cpp bpf_enforcer.hpp
  bpf_ringbuf.cpp bpf_ringbuf.hpp)
target_link_libraries(meshd_sensor PUBLIC PkgConfig::LIBBPF PRIVATE meshd_bpf_skel spdlog::spdlog)
