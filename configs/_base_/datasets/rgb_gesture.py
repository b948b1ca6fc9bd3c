# BIDL's RGB-camera gesture set stored as frame differences ({train,val}.pkl,
# uint8 [N, 60, 2, H, W]), resized to 40x40 as BIDL does, batch 16; training
# clips zero-padded by 4 and randomly cropped back to 40x40, one box per
# clip (BIDL's RandomCropVideoDict(size=40, padding=4), applications/
# classification/videodiff/rgbgesture/clif3flif2rg/
# clif3flif2rg_itout-b16x1-rgbgesture.py).
_data_root = 'datasets/RGBGesture'
num_steps = 60  # T: the stored clips hold 60 frame differences
train_dataloader = dict(
    batch_size=16,
    num_workers=1,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='RGBGesture',
        data_root=_data_root,
        ann_file='train.pkl',
        shape=(40, 40),
        pipeline=[dict(type='RandomCropVideo', size=40, padding=4)]))
val_dataloader = dict(
    batch_size=16,
    num_workers=1,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='RGBGesture',
        data_root=_data_root,
        ann_file='val.pkl',
        shape=(40, 40)))
test_dataloader = val_dataloader
val_evaluator = [dict(type='Accuracy', topk=(1, 5)), dict(type='FiringRate')]
test_evaluator = val_evaluator
