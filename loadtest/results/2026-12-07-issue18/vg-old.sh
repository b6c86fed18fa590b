#!/bin/bash
exec valgrind --tool=callgrind --callgrind-out-file=/work/cg/cg-old.%p.out --dump-instr=no /work/bin-18before/classrelay "$@"
