# Draws bench/out/bench.png from the plot-*.dat files the end-to-end
# benchmarks write (gnuplot -c bench/plot.gp bench/out).
dir = ARG1
set terminal pngcairo size 1600,2000 font "sans,10"
set output dir."/bench.png"
set multiplot layout 4,2 title "replink benchmarks (".system("date -u +%Y-%m-%d").", ".system("nproc")." CPUs, loopback; medians of interleaved runs)"
set style fill solid 0.6 border -1
set boxwidth 0.6
set grid ytics
set yrange [0:*]
set xtics rotate by -20 noenhanced font "sans,8"
set bmargin 7
set rmargin 12
unset key

set title "Ingest throughput, MB/s (higher is better)"
plot dir."/plot-ingest.dat" using 0:2:xtic(1) with boxes lc rgb "#4878a8"

set title "Native slave catch-up from nothing, seconds (lower is better)"
plot dir."/plot-e2e.dat" using 0:2:xtic(1) with boxes lc rgb "#58a858"

set title "Master CPU seconds, 4 slave IO threads (lower is better)"
plot dir."/plot-fanout.dat" using 0:2:xtic(1) with boxes lc rgb "#c87838"

set title "Commit to event latency p99, ms (lower is better)"
plot dir."/plot-latency.dat" using 0:2:xtic(1) with boxes lc rgb "#9868b8"

set title "replink peak RSS, MiB (goal <= 64)"
plot dir."/plot-memory.dat" using 0:2:xtic(1) with boxes lc rgb "#a85858", 64 with lines dt 2 lc rgb "black"

set title "Serving one binlog file over verified TLS, MB/s (higher is better)"
plot dir."/plot-serve.dat" using 0:2:xtic(1) with boxes lc rgb "#4878a8"

set title "Master CPU seconds, 8 mariadb-binlog readers of the file (lower is better)"
plot dir."/plot-servecpu.dat" using 0:2:xtic(1) with boxes lc rgb "#c87838"

set title "Small transactions: durable lag behind the master, KiB"
set xtics norotate font "sans,9"
set xlabel "seconds into the write burst"
plot dir."/plot-smalllag.dat" using 1:2 with lines lw 2 lc rgb "#4878a8"
unset multiplot
