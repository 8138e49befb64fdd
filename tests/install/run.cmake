# Installs the build tree into a scratch prefix, then builds and runs a consumer against it
# twice: through the CMake package (shared and static) and through pkg-config.
# Invoked by ctest: cmake -DSRC=<source dir> -DBIN=<build dir> -P run.cmake
set(work ${BIN}/install-test)
file(REMOVE_RECURSE ${work})
set(prefix ${work}/prefix)

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  message(STATUS "${out}")
endfunction()

run(${CMAKE_COMMAND} --install ${BIN} --prefix ${prefix})
run(${CMAKE_COMMAND} -S ${SRC}/tests/install -B ${work}/cmake -DCMAKE_PREFIX_PATH=${prefix})
run(${CMAKE_COMMAND} --build ${work}/cmake)
run(${work}/cmake/consumer)
run(${work}/cmake/consumer_static)

# pkg-config, as a Makefile user would.
file(GLOB_RECURSE pcfile ${prefix}/*/weft.pc)
get_filename_component(pcdir "${pcfile}" DIRECTORY)
set(ENV{PKG_CONFIG_PATH} "${pcdir}")
execute_process(COMMAND pkg-config --cflags --libs weft OUTPUT_VARIABLE flags
                OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "pkg-config --cflags --libs weft failed")
endif()
separate_arguments(flags UNIX_COMMAND "${flags}")
get_filename_component(libdir "${pcdir}" DIRECTORY)
run(cc ${SRC}/tests/install/consumer.c ${flags} -Wl,-rpath,${libdir} -o ${work}/consumer_pc)
run(${work}/consumer_pc)
