// The global helpers of Sentinel Hub's evalscript V3 reference ("Utility Functions"), written for polyfis.
//
// Installed after the runner and before the script. Each helper is an ordinary global (writable and
// configurable), so a script may declare its own function, class, const or let under the same name; the
// runner uses none of them.

(function (global) {
  function install(name, value) {
    Object.defineProperty(global, name, {value: value, writable: true, configurable: true, enumerable: false});
  }

  const JAVA_DOUBLE_MAX_VAL = 1.7976931348623157e308;

  // --- numbers -------------------------------------------------------------------------------------------

  // (x - y) / (x + y), 0 when the sum is 0.
  function index(x, y) {
    const sum = x + y;
    return sum == 0 ? 0 : (x - y) / sum;
  }

  // 1 / x, JAVA_DOUBLE_MAX_VAL when x is 0.
  function inverse(x) {
    return x == 0 ? JAVA_DOUBLE_MAX_VAL : 1 / x;
  }

  function bothArrays(intervals, values) {
    return Array.isArray(intervals) && Array.isArray(values) && intervals.length > 0 && values.length > 0;
  }

  function copy(value) {
    return Array.isArray(value) ? value.slice() : value;
  }

  // The value of the interval (intervals[i - 1], intervals[i]] holding ``value``: values[0] up to intervals[0],
  // the last value past the last bound; ``value`` itself without intervals.
  function valueMap(value, intervals, values) {
    if (!bothArrays(intervals, values)) return value;
    for (let i = 0; i < intervals.length; i++) {
      if (value <= intervals[i]) return copy(values[Math.min(i, values.length - 1)]);
    }
    return copy(values[values.length - 1]);
  }

  function mix(low, high, ratio) {
    if (Array.isArray(low)) return low.map((v, i) => v * (1 - ratio) + high[i] * ratio);
    return low * (1 - ratio) + high * ratio;
  }

  // Linear interpolation of values (numbers or arrays of numbers) between the bounds of ``intervals``,
  // clamped to the first and last value outside them; ``value`` itself without intervals.
  function valueInterpolate(value, intervals, values) {
    if (!bothArrays(intervals, values)) return value;
    if (value <= intervals[0]) return copy(values[0]);
    for (let i = 1; i < intervals.length && i < values.length; i++) {
      if (value <= intervals[i]) {
        return mix(values[i - 1], values[i], (value - intervals[i - 1]) / (intervals[i] - intervals[i - 1]));
      }
    }
    return copy(values[Math.min(intervals.length, values.length) - 1]);
  }

  // --- colours -------------------------------------------------------------------------------------------

  // 0xRRGGBB -> [R, G, B] (0..255).
  function int2rgb(color) {
    return [(color >>> 16) & 0xff, (color >>> 8) & 0xff, color & 0xff];
  }

  // [R, G, B] (0..255) -> 0xRRGGBB.
  function rgb2int(color) {
    return color[0] * 65536 + color[1] * 256 + color[2];
  }

  // A new array of the values divided by 255.
  function normalizeRGB(rgb255) {
    return rgb255.map((v) => v / 255);
  }

  // color1 * alpha + color2 * (1 - alpha), component by component; two 0xRRGGBB integers give one back.
  function combine(color1, color2, alpha) {
    if (Array.isArray(color1)) return color1.map((v, i) => v * alpha + color2[i] * (1 - alpha));
    const a = int2rgb(color1), b = int2rgb(color2);
    return rgb2int(a.map((v, i) => Math.round(v * alpha + b[i] * (1 - alpha))));
  }

  // A colour given as 0xRRGGBB or as normalised [r, g, b], as 0..255 components.
  function components(color) {
    return Array.isArray(color) ? color.map((v) => v * 255) : int2rgb(color);
  }

  const blueRed = [
    [1.0, 0x000080], [0.875, 0x0000ff], [0.625, 0x00ffff], [0.375, 0xffff00], [0.125, 0xff0000], [0.0, 0x800000],
  ];
  const redTemperature = [[1.0, 0x000000], [0.525, 0xae0000], [0.3, 0xff6e00], [0.25, 0xff8600], [0.0, 0xffffff]];
  const greenWhite = [[1.0, 0x000000], [0.6, 0x006600], [0.3, 0x80b300], [0.0, 0xffffff]];
  const oceanColor = [
    [0.0, [147, 0, 108]], [0.0471, [111, 0, 144]], [0.098, [72, 0, 183]], [0.149, [33, 0, 222]],
    [0.2, [0, 10, 255]], [0.2471, [0, 74, 255]], [0.298, [0, 144, 255]], [0.349, [0, 213, 255]],
    [0.4, [0, 255, 215]], [0.4471, [0, 255, 119]], [0.498, [0, 255, 15]], [0.549, [96, 255, 0]],
    [0.6, [200, 255, 0]], [0.6471, [255, 235, 0]], [0.698, [255, 183, 0]], [0.749, [255, 131, 0]],
    [0.8, [255, 79, 0]], [0.8471, [255, 31, 0]], [0.898, [230, 0, 0]], [0.949, [165, 0, 0]], [1.0, [105, 0, 0]],
  ].map((pair) => [pair[0], normalizeRGB(pair[1])]);

  // The discrete colour of the last pair whose value is at most ``val`` (the first pair's below them all).
  class ColorMapVisualizer {
    constructor(valColPairs) {
      this.valColPairs = valColPairs;
    }

    process(val) {
      let color = this.valColPairs[0][1];
      for (let i = 0; i < this.valColPairs.length && val >= this.valColPairs[i][0]; i++) color = this.valColPairs[i][1];
      return components(color).map((v) => v / 255);
    }

    static createDefaultColorMap() {
      return new ColorMapVisualizer([
        [-1.0, 0x000000], [-0.2, 0xff0000], [-0.1, 0x9a0000], [0.0, 0x660000], [0.1, 0xffff33], [0.2, 0xcccc33],
        [0.3, 0x666600], [0.4, 0x33ffff], [0.5, 0x33cccc], [0.6, 0x006666], [0.7, 0x33ff33], [0.8, 0x33cc33],
        [0.9, 0x006600],
      ]);
    }
  }

  // The three legacy colour tables list their values from 1 down to 0 with the colours of the values
  // from 0 up: as ramps, value i of the reversed list carries colour i.
  function legacyRamp(table) {
    return table.map((pair, i) => [table[table.length - 1 - i][0], pair[1]]);
  }

  // Colours interpolated between the ramp's values (0..255 components, rounded down), the end colours
  // outside them; ``minVal``/``maxVal`` move the ramp's first and last values, the others linearly.
  class ColorRampVisualizer {
    constructor(ramps, minVal, maxVal) {
      const sorted = ramps.map((r) => [r[0], components(r[1])]).sort((a, b) => a[0] - b[0]);
      let values = sorted.map((r) => r[0]);
      const low = values[0], high = values[values.length - 1];
      if (minVal !== undefined || maxVal !== undefined) {
        const from = minVal === undefined ? low : minVal, to = maxVal === undefined ? high : maxVal;
        values = values.map((v) => (high === low ? from : from + ((v - low) * (to - from)) / (high - low)));
      }
      this.values = values;
      this.colors = sorted.map((r) => r[1]);
    }

    process(value) {
      const values = this.values, colors = this.colors, last = values.length - 1;
      let color = colors[last];
      if (value <= values[0]) {
        color = colors[0];
      } else {
        for (let i = 1; i <= last; i++) {
          if (value <= values[i]) {
            const ratio = (value - values[i - 1]) / (values[i] - values[i - 1]);
            color = colors[i - 1].map((c, k) => Math.floor(c + (colors[i][k] - c) * ratio));
            break;
          }
        }
      }
      return color.map((c) => c / 255);
    }

    inverse() {
      const reversed = Object.create(ColorRampVisualizer.prototype);
      reversed.values = this.values.slice();
      reversed.colors = this.colors.slice().reverse();
      return reversed;
    }

    static createRedTemperature(minVal, maxVal) {
      return new ColorRampVisualizer(legacyRamp(redTemperature), minVal, maxVal);
    }

    static createWhiteGreen(minVal, maxVal) {
      return new ColorRampVisualizer(legacyRamp(greenWhite), minVal, maxVal);
    }

    static createBlueRed(minVal, maxVal) {
      return new ColorRampVisualizer(legacyRamp(blueRed), minVal, maxVal);
    }

    static createOceanColor(minVal, maxVal) {
      return new ColorRampVisualizer(oceanColor, minVal, maxVal);
    }
  }

  // Deprecated in favour of ColorRampVisualizer: pair value v stands for minVal * v + maxVal * (1 - v), and
  // the colours are interpolated on rounded 0..255 components.
  class ColorGradientVisualizer {
    constructor(valColPairs, minVal = 0.0, maxVal = 1.0) {
      this.valColPairs = valColPairs
        .map((pair) => [minVal * pair[0] + maxVal * (1 - pair[0]), components(pair[1])])
        .sort((a, b) => a[0] - b[0]);
    }

    process(val) {
      const pairs = this.valColPairs, last = pairs.length - 1;
      let color = pairs[last][1];
      if (val <= pairs[0][0]) {
        color = pairs[0][1];
      } else {
        for (let i = 1; i <= last; i++) {
          if (val <= pairs[i][0]) {
            const alpha = (val - pairs[i - 1][0]) / (pairs[i][0] - pairs[i - 1][0]);
            color = pairs[i][1].map((c, k) => Math.round(c * alpha + pairs[i - 1][1][k] * (1 - alpha)));
            break;
          }
        }
      }
      return color.map((c) => c / 255);
    }

    static createRedTemperature(minVal, maxVal) {
      return new ColorGradientVisualizer(redTemperature, minVal, maxVal);
    }

    static createWhiteGreen(minVal, maxVal) {
      return new ColorGradientVisualizer(greenWhite, minVal, maxVal);
    }

    static createBlueRed(minVal, maxVal) {
      return new ColorGradientVisualizer(blueRed, minVal, maxVal);
    }
  }

  const HIGHLIGHT_POINT = 0.92, CLIP_POINT = 2.0;

  function clamp01(v) {
    return Math.max(0, Math.min(1, v));
  }

  // minValue -> 0 and maxValue -> 1 linearly (with gain, offset, gamma); when maxValue is in (0, 1) the part
  // above 0.92 is compressed so that 2 * maxValue - minValue reaches 1; clamped to [0, 1].
  class HighlightCompressVisualizer {
    constructor(minValue = 0.0, maxValue = 1.0, gain = 1.0, offset = 0.0, gamma = 1.0) {
      this.minValue = minValue;
      this.maxValue = maxValue;
      this.gain = gain;
      this.offset = offset;
      this.gamma = gamma;
      this.compress = maxValue > 0 && maxValue < 1;
    }

    process(val) {
      let v = (this.gain * (val - this.minValue)) / (this.maxValue - this.minValue) + this.offset;
      if (this.gamma != 1) v = Math.pow(Math.max(0, v), this.gamma);
      if (this.compress && v > HIGHLIGHT_POINT) {
        v = HIGHLIGHT_POINT + ((v - HIGHLIGHT_POINT) * (1 - HIGHLIGHT_POINT)) / (CLIP_POINT - HIGHLIGHT_POINT);
      }
      return clamp01(v);
    }
  }

  // The same mapping as a one-element array (older scripts push dataMask onto it).
  class HighlightCompressVisualizerSingle extends HighlightCompressVisualizer {
    process(val) {
      return [super.process(val)];
    }
  }

  // minValue -> 0 and maxValue -> 1 linearly (with gain, offset, gamma), clamped to [0, 1].
  class DefaultVisualizer {
    constructor(minValue = 0.0, maxValue = 1.0, gain = 1.0, offset = 0.0, gamma = 1.0) {
      this.minValue = minValue;
      this.maxValue = maxValue;
      this.gain = gain;
      this.offset = offset;
      this.gamma = gamma;
    }

    process(val) {
      let v = (this.gain * (val - this.minValue)) / (this.maxValue - this.minValue) + this.offset;
      if (this.gamma != 1) v = Math.pow(Math.max(0, v), this.gamma);
      return clamp01(v);
    }
  }

  // The value as an array, unchanged.
  class Identity {
    process(val) {
      return Array.isArray(val) ? val : [val];
    }
  }

  // --- bit-packed quality bands --------------------------------------------------------------------------

  function bit(value, k) {
    return Math.floor(value / Math.pow(2, k)) % 2;
  }

  // Sentinel-3 OLCI QUALITY_FLAGS: bits 31..21 the named flags, bits 20..0 saturation of Oa01..Oa21.
  function decodeS3OLCIQualityFlags(value) {
    const names = ["land", "coastline", "fresh_inland_water", "tidal_region", "bright", "straylight_risk", "invalid",
                   "cosmetic", "duplicated", "sun_glint_risk", "dubious"];
    const flags = {};
    names.forEach((name, i) => { flags[name] = bit(value, 31 - i); });
    for (let band = 1; band <= 21; band++) flags["saturatedB" + (band < 10 ? "0" : "") + band] = bit(value, 21 - band);
    return flags;
  }

  // Landsat 8 Collection 2 QA_PIXEL: single-bit conditions 0..7, two-bit confidences from bit 8 on.
  function decodeL8C2Qa(value) {
    const two = (k) => bit(value, k) + 2 * bit(value, k + 1);
    return {
      fill: bit(value, 0), dilatedCloud: bit(value, 1), cirrus: bit(value, 2), cloud: bit(value, 3),
      cloudShadow: bit(value, 4), snow: bit(value, 5), clear: bit(value, 6), water: bit(value, 7),
      cloudConfidence: two(8), cloudShadowConfidence: two(10), snowIceConfidence: two(12), cirrusConfidence: two(14),
    };
  }

  const helpers = {
    JAVA_DOUBLE_MAX_VAL, index, inverse, valueMap, valueInterpolate, colorBlend: valueInterpolate, int2rgb, rgb2int,
    normalizeRGB, combine, blueRed, redTemperature, greenWhite, oceanColor, ColorMapVisualizer, ColorRampVisualizer,
    ColorGradientVisualizer, HighlightCompressVisualizer, HighlightCompressVisualizerSingle, DefaultVisualizer,
    Identity, decodeS3OLCIQualityFlags, decodeL8C2Qa,
    Mosaicking: {SIMPLE: "SIMPLE", ORBIT: "ORBIT", TILE: "TILE"},
    SampleType: {INT8: "INT8", UINT8: "UINT8", INT16: "INT16", UINT16: "UINT16", FLOAT32: "FLOAT32", AUTO: "AUTO"},
  };
  Object.keys(helpers).forEach((name) => install(name, helpers[name]));
})(globalThis);
