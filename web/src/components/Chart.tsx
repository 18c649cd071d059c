/** A uPlot time-series chart that follows its container's width. */
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';

export interface ChartSeries {
  label: string;
  /** CSS colour */
  stroke: string;
}

interface Props {
  /** [x (unix seconds), ...one array per series] */
  data: number[][];
  series: ChartSeries[];
  height?: number;
  /** Formats a y value for the axis and the legend. */
  format: (v: number) => string;
  label: string;
  /** Fixed y range, e.g. [0, 100] for percentages. */
  range?: [number, number];
  /** Seconds shown on the x axis (the chart scrolls). */
  window?: number;
}

export function Chart({ data, series, height = 180, format, label, range, window }: Props) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const axisColour = getComputedStyle(el).color;
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height,
      series: [
        {},
        ...series.map((s) => ({
          label: s.label,
          stroke: s.stroke,
          width: 1.5,
          fill: `${s.stroke}22`,
          value: (_u: uPlot, v: number | null) => (v == null ? '–' : format(v)),
        })),
      ],
      axes: [
        { stroke: axisColour, grid: { stroke: '#8883' }, ticks: { stroke: '#8883' } },
        {
          stroke: axisColour,
          size: 70,
          grid: { stroke: '#8883' },
          ticks: { stroke: '#8883' },
          values: (_u, vals) => vals.map((v) => format(v)),
        },
      ],
      scales: {
        x: {
          time: true,
          ...(window
            ? {
                // Always the last `window` seconds up to now, whatever the data: the chart scrolls like a clock.
                range: (): uPlot.Range.MinMax => {
                  const end = Date.now() / 1000;
                  return [end - window, end];
                },
              }
            : {}),
        },
        y: range ? { range } : { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] },
      },
      cursor: { drag: { x: false, y: false } },
      legend: { live: true },
    };
    const u = new uPlot(opts, data as uPlot.AlignedData, el);
    plot.current = u;
    const resize = new ResizeObserver(() => u.setSize({ width: Math.max(200, el.clientWidth), height }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      u.destroy();
      plot.current = null;
    };
    // The chart is built once; data flows in through setData below.
  }, []);

  useEffect(() => {
    plot.current?.setData(data as uPlot.AlignedData);
  }, [data]);

  // The sample count and the highest value drawn, as attributes: what the chart shows, readable without pixels.
  let peak = 0;
  for (const ys of data.slice(1)) for (const y of ys) if (y > peak) peak = y;
  return (
    <div
      class="chart"
      ref={box}
      role="img"
      aria-label={label}
      data-samples={data[0]?.length ?? 0}
      data-peak={Math.round(peak)}
    />
  );
}
