#!/bin/bash
exec valgrind --tool=callgrind --callgrind-out-file=/work/cg/cg-new.%p.out --dump-instr=no /work/bin-int/classrelay "$@"
