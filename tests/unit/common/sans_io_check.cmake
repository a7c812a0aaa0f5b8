# The one rule of the architecture: trust/ and meshd/core/ are sans-I/O. Fails if any of
# their sources includes Asio, sockets, libbpf, threads, file or console streams, the
# environment, or reads a clock (including the drivers' meshd/common/clock.hpp) or draws its
# own randomness. Time and randomness are passed in by the driver.
# Usage: cmake -DROOT=<repo> -P sans_io_check.cmake
if(NOT ROOT)
  message(FATAL_ERROR "sans_io_check: pass -DROOT=<repository root>")
endif()
file(GLOB_RECURSE files
  ${ROOT}/trust/*.hpp ${ROOT}/trust/*.cpp ${ROOT}/trust/*.h ${ROOT}/trust/*.cc
  ${ROOT}/meshd/core/*.hpp ${ROOT}/meshd/core/*.cpp ${ROOT}/meshd/core/*.h ${ROOT}/meshd/core/*.cc)
list(LENGTH files n)
if(n EQUAL 0)
  message(FATAL_ERROR "sans_io_check: no sources found under ${ROOT}/trust or ${ROOT}/meshd/core")
endif()
# Each entry: "regex=>why it is forbidden".
set(rules
  "#[ \t]*include[ \t]*[<\"](boost/)?asio[^>\"]*[>\"]=>Asio"
  "#[ \t]*include[ \t]*[<\"]sys/socket\\.h[>\"]=>sockets"
  "#[ \t]*include[ \t]*[<\"]netinet/=>sockets (netinet)"
  "#[ \t]*include[ \t]*[<\"]arpa/inet\\.h[>\"]=>sockets (arpa/inet)"
  "#[ \t]*include[ \t]*[<\"]bpf/=>libbpf"
  "#[ \t]*include[ \t]*<thread>=>threads"
  "#[ \t]*include[ \t]*<mutex>=>threads (mutex)"
  "#[ \t]*include[ \t]*<future>=>threads (future)"
  "#[ \t]*include[ \t]*<condition_variable>=>threads (condition_variable)"
  "#[ \t]*include[ \t]*<pthread\\.h>=>threads (pthread)"
  "#[ \t]*include[ \t]*<atomic>=>threads (atomic)"
  "#[ \t]*include[ \t]*<chrono>=>clocks (chrono)"
  "#[ \t]*include[ \t]*<ctime>=>clocks (ctime)"
  "#[ \t]*include[ \t]*\"meshd/common/clock\\.hpp\"=>clock read (the drivers' clock.hpp)"
  "#[ \t]*include[ \t]*<random>=>own randomness (random)"
  "#[ \t]*include[ \t]*<fstream>=>file I/O (fstream)"
  "#[ \t]*include[ \t]*<iostream>=>console I/O (iostream)"
  "#[ \t]*include[ \t]*<unistd\\.h>=>OS calls (unistd)"
  "libbpf=>libbpf"
  "getenv=>environment (getenv)"
  "steady_clock::now=>clock read (steady_clock::now)"
  "system_clock::now=>clock read (system_clock::now)"
  "high_resolution_clock::now=>clock read (high_resolution_clock::now)"
  "random_device=>own randomness (std::random_device)"
  "[^_a-zA-Z0-9.>:]s?rand[ \t]*\\(=>own randomness (rand())"
  "clock_gettime=>clock read (clock_gettime)"
  "gettimeofday=>clock read (gettimeofday)"
  "[^_a-zA-Z0-9.>:]time[ \t]*\\([ \t]*(NULL|nullptr|0)?[ \t]*\\)=>clock read (time())")
set(violations "")
foreach(f ${files})
  file(STRINGS ${f} lines)
  set(line_no 0)
  foreach(line IN LISTS lines)
    math(EXPR line_no "${line_no} + 1")
    # Comments may mention the forbidden things (to explain the rule).
    string(REGEX REPLACE "//.*$" "" code "${line}")
    foreach(rule ${rules})
      string(REPLACE "=>" ";" parts "${rule}")
      list(GET parts 0 re)
      list(GET parts 1 why)
      if(code MATCHES "${re}")
        file(RELATIVE_PATH rel ${ROOT} ${f})
        string(APPEND violations "  ${rel}:${line_no}: ${why}: ${line}\n")
      endif()
    endforeach()
  endforeach()
endforeach()
if(violations)
  message(FATAL_ERROR "sans-I/O rule violated (trust/ and meshd/core/ must not do I/O, read "
                      "clocks or draw their own randomness):\n${violations}")
endif()
message(STATUS "sans_io_check: ${n} files in trust/ and meshd/core/ are clean")
