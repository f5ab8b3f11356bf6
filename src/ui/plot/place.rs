//! Where a plot's text labels go: beside their points, over no other label or marker, inside
//! the plotting area. Each label tries the places around its point in turn (right above, right
//! below, left above, left below, above, below, then the same twice and three times as far)
//! and takes the first that is free, else the one that covers least.

/// A rectangle in pixels, `x0..x1` × `y0..y1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    pub x0: i32,
    pub y0: i32,
    pub x1: i32,
    pub y1: i32,
}

impl Rect {
    fn area(&self) -> i64 {
        i64::from((self.x1 - self.x0).max(0)) * i64::from((self.y1 - self.y0).max(0))
    }

    fn overlap(&self, o: &Rect) -> i64 {
        let w = (self.x1.min(o.x1) - self.x0.max(o.x0)).max(0);
        let h = (self.y1.min(o.y1) - self.y0.max(o.y0)).max(0);
        i64::from(w) * i64::from(h)
    }
}

/// The labels and markers already on one plotting area.
pub struct Placer {
    bounds: Rect,
    taken: Vec<Rect>,
}

/// The gap between a point and its label, in pixels.
const GAP: i32 = 7;

impl Placer {
    pub fn new(bounds: Rect) -> Self {
        Placer {
            bounds,
            taken: Vec::new(),
        }
    }

    /// Keeps labels off a marker of radius `r` at `at`.
    pub fn block_point(&mut self, at: (i32, i32), r: i32) {
        self.block(Rect {
            x0: at.0 - r,
            y0: at.1 - r,
            x1: at.0 + r,
            y1: at.1 + r,
        });
    }

    pub fn block(&mut self, r: Rect) {
        self.taken.push(r);
    }

    /// The offset from `at` of the top-left corner of a `w` × `h` label, which then blocks
    /// its place for the labels after it.
    pub fn place(&mut self, at: (i32, i32), (w, h): (i32, i32)) -> (i32, i32) {
        let mut best = ((GAP, -h - 2), i64::MAX);
        for d in 1..=3 {
            let g = GAP * d;
            let v = 2 + (d - 1) * h;
            let around = [
                (g, -h - v),
                (g, v),
                (-w - g, -h - v),
                (-w - g, v),
                (-w / 2, -h - g),
                (-w / 2, g),
            ];
            for off in around {
                let r = Rect {
                    x0: at.0 + off.0,
                    y0: at.1 + off.1,
                    x1: at.0 + off.0 + w,
                    y1: at.1 + off.1 + h,
                };
                // Out of the area is worse than over another label; farther is a little worse.
                let outside = r.area() - r.overlap(&self.bounds);
                let covered: i64 = self.taken.iter().map(|t| r.overlap(t)).sum();
                let cost = outside * 1000 + covered * 10 + i64::from(d - 1);
                if cost < best.1 {
                    best = (off, cost);
                }
                if cost == 0 {
                    break;
                }
            }
            if best.1 == 0 {
                break;
            }
        }
        let (off, _) = best;
        self.block(Rect {
            x0: at.0 + off.0,
            y0: at.1 + off.1,
            x1: at.0 + off.0 + w,
            y1: at.1 + off.1 + h,
        });
        off
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AREA: Rect = Rect {
        x0: 0,
        y0: 0,
        x1: 400,
        y1: 300,
    };

    fn rect(at: (i32, i32), off: (i32, i32), (w, h): (i32, i32)) -> Rect {
        Rect {
            x0: at.0 + off.0,
            y0: at.1 + off.1,
            x1: at.0 + off.0 + w,
            y1: at.1 + off.1 + h,
        }
    }

    #[test]
    fn labels_of_one_point_do_not_overlap_each_other_or_its_marker() {
        let mut p = Placer::new(AREA);
        let at = (200, 150);
        p.block_point(at, 6);
        let placed: Vec<Rect> = (0..6)
            .map(|_| rect(at, p.place(at, (30, 14)), (30, 14)))
            .collect();
        let marker = rect(at, (-6, -6), (12, 12));
        for (i, a) in placed.iter().enumerate() {
            assert_eq!(a.overlap(&marker), 0, "{a:?} covers the marker");
            for b in &placed[i + 1..] {
                assert_eq!(a.overlap(b), 0, "{a:?} and {b:?} overlap");
            }
        }
    }

    #[test]
    fn a_label_at_an_edge_turns_inward() {
        let mut p = Placer::new(AREA);
        for at in [(395, 150), (5, 150), (200, 3), (200, 297), (398, 2)] {
            let r = rect(at, p.place(at, (80, 14)), (80, 14));
            assert_eq!(r.area() - r.overlap(&AREA), 0, "{r:?} leaves the area");
        }
    }

    #[test]
    fn crowded_points_spread_their_labels() {
        // The c64c64 case: two series' labels at the same spot.
        let mut p = Placer::new(AREA);
        let a = p.place((100, 100), (24, 14));
        let b = p.place((101, 100), (24, 14));
        assert_eq!(
            rect((100, 100), a, (24, 14)).overlap(&rect((101, 100), b, (24, 14))),
            0
        );
    }
}
