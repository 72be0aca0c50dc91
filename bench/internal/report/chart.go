package report

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"
	"strings"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Chart layout, in pixels.
const (
	chartWidth = 960
	labelWidth = 360
	rowHeight  = 20
	margin     = 12
	barLeft    = margin + labelWidth
	barRight   = chartWidth - margin - 90 // room for the value text
)

var (
	colBackground = color.RGBA{255, 255, 255, 255}
	colText       = color.RGBA{30, 30, 30, 255}
	colGrid       = color.RGBA{225, 225, 225, 255}
	colSdbx       = color.RGBA{52, 110, 200, 255}
	colBaseline   = color.RGBA{150, 150, 150, 255}
	colTick       = color.RGBA{20, 20, 20, 255}
	colMet        = color.RGBA{60, 160, 80, 255}
	colMissed     = color.RGBA{210, 70, 60, 255}
)

// WritePNG draws the chart: the latencies (p50 bars, p99 ticks, log
// scale) and each figure against its target.
func (res *Results) WritePNG(w io.Writer) error {
	var lat, tgt []Row
	for _, r := range res.Rows {
		if r.Latency() && r.P50 > 0 {
			lat = append(lat, r)
		}
		if r.Target > 0 && r.Measured() > 0 {
			tgt = append(tgt, r)
		}
	}
	h := margin + 2*rowHeight + (len(lat)+2)*rowHeight + 2*rowHeight + (len(tgt)+2)*rowHeight + margin
	img := image.NewRGBA(image.Rect(0, 0, chartWidth, h))
	draw.Draw(img, img.Bounds(), image.NewUniform(colBackground), image.Point{}, draw.Src)
	c := &canvas{img: img}
	y := margin
	c.text(margin, y+13, "sdbx benchmarks "+res.Started.UTC().Format("2006-01-02 15:04")+" UTC  ("+res.Command+")", colText)
	y += 2 * rowHeight
	y = c.latencies(y, lat)
	y += rowHeight
	c.targets(y, tgt)
	return png.Encode(w, img)
}

// latencies draws the latency panel from y and returns where it ends.
func (c *canvas) latencies(y int, rows []Row) int {
	c.text(margin, y+13, "Latency in ms, log scale: bar = p50, black tick = p99", colText)
	y += rowHeight
	lo, hi := math.Inf(1), 0.0
	for _, r := range rows {
		lo, hi = math.Min(lo, r.P50), math.Max(hi, math.Max(r.P50, r.P99))
	}
	d0, d1 := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if d1 <= d0 {
		d1 = d0 + 1
	}
	x := func(v float64) int {
		f := (math.Log10(math.Max(v, math.Pow(10, d0))) - d0) / (d1 - d0)
		return barLeft + int(f*float64(barRight-barLeft))
	}
	top, bottom := y, y+len(rows)*rowHeight
	for d := d0; d <= d1; d++ {
		gx := x(math.Pow(10, d))
		c.rect(gx, top, gx+1, bottom, colGrid)
		c.text(gx-8, bottom+13, num(math.Pow(10, d)), colText)
	}
	for i, r := range rows {
		ry := y + i*rowHeight
		c.label(ry+14, r.ChartLabel())
		col := colBaseline
		if strings.HasPrefix(r.Name, "sdbx") {
			col = colSdbx
		}
		c.rect(barLeft, ry+4, max(x(r.P50), barLeft+1), ry+rowHeight-4, col)
		if r.P99 > 0 {
			px := x(r.P99)
			c.rect(px-1, ry+2, px+1, ry+rowHeight-2, colTick)
		}
		c.text(barRight+8, ry+14, num(r.P50)+" ms", colText)
	}
	return bottom + 2*rowHeight
}

// targets draws each row's score against its target (1x meets it).
func (c *canvas) targets(y int, rows []Row) {
	c.text(margin, y+13, "Against target: 1x meets it (for latency and memory, target / measured)", colText)
	y += rowHeight
	const maxScore = 4.0
	x := func(s float64) int { return barLeft + int(math.Min(s, maxScore)/maxScore*float64(barRight-barLeft)) }
	top, bottom := y, y+len(rows)*rowHeight
	for s := 0.0; s <= maxScore; s++ {
		gx := x(s)
		col := colGrid
		if s == 1 {
			col = colTick
		}
		c.rect(gx, top, gx+1, bottom, col)
		c.text(gx-4, bottom+13, fmt.Sprintf("%gx", s), colText)
	}
	for i, r := range rows {
		ry := y + i*rowHeight
		c.label(ry+14, r.ChartLabel())
		col := colMissed
		if r.Met() {
			col = colMet
		}
		c.rect(barLeft, ry+4, max(x(r.Score()), barLeft+1), ry+rowHeight-4, col)
		c.text(barRight+8, ry+14, fmt.Sprintf("%.2fx", r.Score()), colText)
	}
}

type canvas struct{ img *image.RGBA }

func (c *canvas) rect(x0, y0, x1, y1 int, col color.Color) {
	draw.Draw(c.img, image.Rect(x0, y0, x1, y1), image.NewUniform(col), image.Point{}, draw.Src)
}

// label draws a row's label in the label column, cut to fit.
func (c *canvas) label(y int, s string) {
	s = ascii(s)
	if limit := (labelWidth - 8) / basicfont.Face7x13.Advance; len(s) > limit {
		s = s[:limit-2] + ".."
	}
	c.text(margin, y, s, colText)
}

// text draws s (made ASCII) with its baseline at y.
func (c *canvas) text(x, y int, s string, col color.Color) {
	s = ascii(s)
	d := font.Drawer{Dst: c.img, Src: image.NewUniform(col), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

// ascii replaces the symbols used in labels by ASCII look-alikes (the
// bitmap font has ASCII only) and drops anything else outside it.
func ascii(s string) string {
	s = strings.NewReplacer("→", "->", "≤", "<=", "≥", ">=", "×", "x", "·", "-", "µ", "u", "‘", "'", "’", "'").Replace(s)
	return strings.Map(func(r rune) rune {
		if r < 32 || r > 126 {
			return '?'
		}
		return r
	}, s)
}
