# User-space half of sensor/: nftables and dry-run enforcers, pod identity, usage
# statistics, detectors and the Falco alert endpoint. Included by sensor/CMakeLists.txt.
pkg_check_modules(NFTNL REQUIRED IMPORTED_TARGET libnftnl)
pkg_check_modules(MNL REQUIRED IMPORTED_TARGET libmnl)
find_package(spdlog REQUIRED)
find_package(nlohmann_json REQUIRED)
find_package(Boost 1.74 REQUIRED COMPONENTS system)

target_sources(meshd_sensor PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/dryrun_enforcer.cpp
  ${CMAKE_CURRENT_LIST_DIR}/nft_enforcer.cpp
  ${CMAKE_CURRENT_LIST_DIR}/nft_enforcer_intervals.cpp
  ${CMAKE_CURRENT_LIST_DIR}/nft_enforcer_netlink.cpp
  ${CMAKE_CURRENT_LIST_DIR}/pod_identity.cpp
  ${CMAKE_CURRENT_LIST_DIR}/usage_stats.cpp
  ${CMAKE_CURRENT_LIST_DIR}/falco_endpoint.cpp
  ${CMAKE_CURRENT_LIST_DIR}/detectors/detection.cpp
  ${CMAKE_CURRENT_LIST_DIR}/detectors/prefix_matcher.cpp
  ${CMAKE_CURRENT_LIST_DIR}/detectors/threat_feed.cpp
  ${CMAKE_CURRENT_LIST_DIR}/detectors/fanout.cpp
  ${CMAKE_CURRENT_LIST_DIR}/detectors/falco.cpp
)
target_link_libraries(meshd_sensor
  PUBLIC spdlog::spdlog nlohmann_json::nlohmann_json Boost::system Threads::Threads
  PRIVATE PkgConfig::NFTNL PkgConfig::MNL)
